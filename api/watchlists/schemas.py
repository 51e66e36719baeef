"""Watchlist and price-alert bodies.

What needs no database is decided here: a positive integer price (money is cents,
never floats: ``strict`` refuses ``9.5`` and ``"950"``), a known rarity, and at least
one filter, so an alert that would match every listing on the market is refused
before a transaction opens. Unknown fields are refused (OWASP API3).
"""

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from api.cards.models import RARITIES
from api.core.integers import WHOLE

MAX_ALERT_CENTS = 10**12
SetName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class WatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    card_id: uuid.UUID


class WatchOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    card_id: uuid.UUID
    created_at: datetime


class WatchPage(BaseModel):
    items: list[WatchOut]
    next_cursor: str | None


class AlertIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_price_cents: Annotated[int, Field(gt=0, le=MAX_ALERT_CENTS, strict=True), WHOLE]
    card_id: uuid.UUID | None = None
    set_name: SetName | None = None
    rarity: str | None = Field(None, description=f"one of {', '.join(RARITIES)}")

    @field_validator("rarity")
    @classmethod
    def _known_rarity(cls, value: str | None) -> str | None:
        if value is not None and value not in RARITIES:
            raise ValueError(f"rarity must be one of {', '.join(RARITIES)}")
        return value

    @model_validator(mode="after")
    def _has_filter(self) -> "AlertIn":
        if self.card_id is None and self.set_name is None and self.rarity is None:
            raise ValueError("an alert needs at least one of card_id, set_name, rarity")
        return self


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    max_price_cents: int
    card_id: uuid.UUID | None
    set_name: str | None
    rarity: str | None
    created_at: datetime


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None
