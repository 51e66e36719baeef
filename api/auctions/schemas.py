"""Auction and bid bodies.

Amounts are whole JSON numbers of cents (no fractions, no numeric strings, no
booleans; ``api.core.integers``) with an upper bound, so "huge" amounts are a
422 rather than an overflow deep in the ledger. Unknown fields are refused: status,
leader, end time and result are never writable by clients (OWASP API3).
"""

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.core.integers import WHOLE

AuctionStatus = Literal["active", "ended", "cancelled"]
AuctionResult = Literal["sold", "no_sale"]
AuctionSort = Literal["ends_at", "-ends_at"]

MAX_CENTS = 100_000_000_000  # one billion in currency units: far above any card, far below bigint
MIN_DURATION_S = 60
MAX_DURATION_S = 30 * 24 * 3600
DEFAULT_INCREMENT_CENTS = 100

Cents = Annotated[int, Field(strict=True, gt=0, le=MAX_CENTS), WHOLE]


class AuctionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    card_id: uuid.UUID
    start_price_cents: Cents
    reserve_price_cents: Cents | None = None
    min_increment_cents: Cents = DEFAULT_INCREMENT_CENTS
    duration_seconds: Annotated[
        int, Field(strict=True, ge=MIN_DURATION_S, le=MAX_DURATION_S), WHOLE
    ]

    @model_validator(mode="after")
    def _reserve_not_below_start(self) -> "AuctionCreate":
        reserve = self.reserve_price_cents
        if reserve is not None and reserve < self.start_price_cents:
            raise ValueError("reserve_price_cents must not be below start_price_cents")
        return self


class BidCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_cents: Cents


class AuctionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    card_id: uuid.UUID
    seller_id: uuid.UUID
    start_price_cents: int
    reserve_price_cents: int | None
    min_increment_cents: int
    current_bid_cents: int | None
    current_bidder_id: uuid.UUID | None
    bid_count: int
    starts_at: datetime
    ends_at: datetime
    status: AuctionStatus
    result: AuctionResult | None
    created_at: datetime
    updated_at: datetime


class AuctionPage(BaseModel):
    items: list[AuctionOut]
    next_cursor: str | None


class BidOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    auction_id: uuid.UUID
    bidder_id: uuid.UUID
    amount_cents: int
    created_at: datetime


class BidPage(BaseModel):
    items: list[BidOut]
    next_cursor: str | None
