"""Notification, unread count and Web Push subscription bodies.

The push subscription body is the browser's ``PushSubscription.toJSON()`` as is
(``expirationTime`` included and ignored), so a client can post what the browser
gave it. Key sizes are checked here (a P-256 public point is 65 bytes, the auth
secret 16): a malformed subscription is refused before it could make every later
push fail.
"""

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

MAX_ENDPOINT_LENGTH = 2048
P256DH_BYTES = 65  # an uncompressed P-256 point: 0x04 || X || Y
AUTH_BYTES = 16


class NotificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    seq: int
    kind: str
    payload: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None


class UnreadCount(BaseModel):
    unread: int


class VapidPublicKey(BaseModel):
    public_key: str = Field(description="base64url, the browser's applicationServerKey")


def b64url_bytes(value: str) -> bytes:
    """Decode base64url with or without padding (browsers send it unpadded)."""
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


Key = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_=-]+$")]


class PushKeys(BaseModel):
    model_config = ConfigDict(extra="ignore")

    p256dh: Key
    auth: Key

    @field_validator("p256dh")
    @classmethod
    def _point(cls, value: str) -> str:
        raw = b64url_bytes(value)
        if len(raw) != P256DH_BYTES or raw[0] != 4:
            raise ValueError("p256dh must be an uncompressed P-256 public key (65 bytes)")
        return value

    @field_validator("auth")
    @classmethod
    def _secret(cls, value: str) -> str:
        if len(b64url_bytes(value)) != AUTH_BYTES:
            raise ValueError("auth must be a 16-byte secret")
        return value


class PushSubscriptionIn(BaseModel):
    """``PushSubscription.toJSON()``; unknown fields are ignored (browsers add some)."""

    model_config = ConfigDict(extra="ignore")

    endpoint: Annotated[str, StringConstraints(min_length=1, max_length=MAX_ENDPOINT_LENGTH)]
    keys: PushKeys
    expirationTime: float | None = None  # noqa: N815 - the browser's own field name


class PushSubscriptionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    endpoint: str
    created_at: datetime


class PushSubscriptionPage(BaseModel):
    items: list[PushSubscriptionOut]
    next_cursor: str | None
