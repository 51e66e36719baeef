"""OpenID sign-in request/response bodies. Unknown fields are refused (422)."""

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from api.auth.schemas import Strict

RedirectUri = Annotated[str, Field(min_length=1, max_length=2048)]
AppState = Annotated[str, Field(min_length=1, max_length=500)]


class ProviderOut(BaseModel):
    name: str
    display_name: str


class ExchangeIn(Strict):
    code: Annotated[str, Field(min_length=1, max_length=200)]


class LinkIn(Strict):
    """Start linking: where to send the browser afterwards (allow-listed), and the app's
    own state to get back there."""

    redirect_uri: RedirectUri | None = None
    state: AppState | None = None


class UnlinkIn(Strict):
    """Only needed to remove the last identity: the account's password, proving the
    account can still be signed in to without it."""

    password: Annotated[str, Field(min_length=1, max_length=256)] | None = None


class AuthorizationOut(BaseModel):
    authorization_url: str


class IdentityOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    provider: str
    subject: str
    email: str | None
    created_at: datetime


class IdentityPage(BaseModel):
    items: list[IdentityOut]
    next_cursor: str | None = None
