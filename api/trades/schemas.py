"""Trade offer bodies.

Everything that can be decided without the database is decided here (at least one
card, no card twice, an expiry in a sane future window), so a bad body never
reaches the service and never opens a transaction. Unknown fields are refused
(OWASP API3): ``status``, ``from_user_id`` and the timestamps are never writable.
"""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonDict

OfferStatus = Literal["pending", "accepted", "rejected", "cancelled", "expired"]
OfferRole = Literal["sent", "received"]

MAX_CARDS_PER_SIDE = 50
DEFAULT_EXPIRY = timedelta(days=7)
MIN_EXPIRY = timedelta(minutes=1)
MAX_EXPIRY = timedelta(days=30)

CardIds = Annotated[list[uuid.UUID], Field(max_length=MAX_CARDS_PER_SIDE)]
Message = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]


# "At least one card on some side" in the schema itself, so that clients and generators
# (the fuzzing test) know it: a body with both lists empty or absent does not validate.
_SOME_CARD: JsonDict = {
    "anyOf": [
        {"required": [side], "properties": {side: {"minItems": 1}}}
        for side in ("offered_card_ids", "requested_card_ids")
    ]
}


class TradeOfferCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_SOME_CARD)

    to_user_id: uuid.UUID
    offered_card_ids: CardIds = Field(default_factory=list)
    requested_card_ids: CardIds = Field(default_factory=list)
    message: Message | None = None
    expires_at: datetime | None = Field(
        None, description="RFC 3339 with a UTC offset; 1 minute to 30 days ahead (default 7 days)"
    )

    @model_validator(mode="after")
    def _cards_make_sense(self) -> "TradeOfferCreate":
        every = [*self.offered_card_ids, *self.requested_card_ids]
        if not every:
            raise ValueError("an offer needs at least one card on some side")
        if len(set(every)) != len(every):
            raise ValueError("a card may appear only once in an offer")
        return self

    @field_validator("expires_at")
    @classmethod
    def _expiry_ahead(cls, value: datetime | None) -> datetime | None:
        """A field check (the error is located at ``expires_at``): the window moves with
        the clock, which no schema can say."""
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("expires_at needs a UTC offset")
            if not MIN_EXPIRY <= value - datetime.now(UTC) <= MAX_EXPIRY:
                raise ValueError("expires_at must be between 1 minute and 30 days from now")
        return value


class TradeOfferOut(BaseModel):
    id: uuid.UUID
    from_user_id: uuid.UUID
    to_user_id: uuid.UUID
    offered_card_ids: list[uuid.UUID]
    requested_card_ids: list[uuid.UUID]
    message: str | None
    status: OfferStatus
    expires_at: datetime
    created_at: datetime
    updated_at: datetime


class TradeOfferPage(BaseModel):
    items: list[TradeOfferOut]
    next_cursor: str | None
