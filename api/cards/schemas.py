"""Card bodies. Writable fields are listed explicitly and anything else is a 422, so
``owner_id``/``status``/``version`` can never be changed through PATCH."""

import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

Rarity = Literal["common", "uncommon", "rare", "epic", "legendary"]
CardStatus = Literal["available", "listed", "in_auction"]
HistoryReason = Literal["issue", "sale", "trade", "auction"]

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Number = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
Edition = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]

MAX_ATTRIBUTES_BYTES = 8192


def _check_attributes(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value, separators=(",", ":"))) > MAX_ATTRIBUTES_BYTES:
        raise ValueError(f"attributes larger than {MAX_ATTRIBUTES_BYTES} bytes of JSON")
    return value


class CardCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    set_name: Name
    number: Number
    rarity: Rarity
    edition: Edition | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    owner_id: uuid.UUID | None = None

    _attrs = field_validator("attributes")(_check_attributes)


class CardUpdate(BaseModel):
    """Every field optional; ``null`` only where the column allows it (edition)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    set_name: Name | None = None
    number: Number | None = None
    rarity: Rarity | None = None
    edition: Edition | None = None
    attributes: dict[str, Any] | None = None

    @field_validator("attributes")
    @classmethod
    def _attrs(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _check_attributes(value)

    def changes(self) -> dict[str, Any]:
        """Fields the client sent; explicit nulls on NOT NULL columns are refused."""
        sent = self.model_dump(exclude_unset=True)
        nulls = [k for k, v in sent.items() if v is None and k != "edition"]
        if nulls:
            raise ValueError(f"{', '.join(nulls)}: may not be null")
        return sent


class CardOut(BaseModel):
    """Mirrors ``ece.contracts.card_cache.card_document`` (the cached document)."""

    id: uuid.UUID
    name: str
    set_name: str
    number: str
    rarity: Rarity
    edition: str | None
    attributes: dict[str, Any]
    owner_id: uuid.UUID
    status: CardStatus
    image_url: str | None
    created_at: datetime
    updated_at: datetime


class CardPage(BaseModel):
    items: list[CardOut]
    next_cursor: str | None


class CardHistoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    from_user_id: uuid.UUID | None
    to_user_id: uuid.UUID
    reason: HistoryReason
    reference_id: uuid.UUID | None
    at: datetime


class CardHistoryPage(BaseModel):
    items: list[CardHistoryOut]
    next_cursor: str | None
