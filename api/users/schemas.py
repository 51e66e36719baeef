"""Public user representations (never the password hash or key material)."""

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    username: str
    role: Literal["user", "admin"]
    created_at: datetime


class MeOut(UserOut):
    custody_address: str | None
