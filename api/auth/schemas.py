"""Auth request/response bodies. Unknown fields are refused (422) everywhere."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

Username = Annotated[
    str, StringConstraints(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
]
Password = Annotated[str, Field(min_length=10, max_length=256)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterIn(Strict):
    email: Annotated[EmailStr, Field(max_length=320)]
    username: Username
    password: Password


class LoginIn(Strict):
    login: Annotated[str, StringConstraints(min_length=1, max_length=320, strip_whitespace=True)]
    password: Annotated[str, Field(min_length=1, max_length=256)]


class RefreshIn(Strict):
    refresh_token: Annotated[str, Field(min_length=1, max_length=200)]


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
