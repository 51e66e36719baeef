"""Listing and sale bodies. Only ``card_id`` and ``price_cents`` are writable; the
seller is the caller and the status is the server's."""

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.core.integers import WHOLE
from api.ledger.schemas import MAX_AMOUNT_CENTS

ListingStatus = Literal["active", "sold", "cancelled"]
ListingSort = Literal["price", "-price", "created", "-created"]
PriceCents = Annotated[int, Field(gt=0, le=MAX_AMOUNT_CENTS, strict=True), WHOLE]


class ListingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    card_id: uuid.UUID
    price_cents: PriceCents


class ListingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    card_id: uuid.UUID
    seller_id: uuid.UUID
    price_cents: int
    status: ListingStatus
    created_at: datetime
    updated_at: datetime


class ListingPage(BaseModel):
    items: list[ListingOut]
    next_cursor: str | None


class SaleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    listing_id: uuid.UUID
    card_id: uuid.UUID
    buyer_id: uuid.UUID
    seller_id: uuid.UUID
    price_cents: int
    fee_cents: int
    created_at: datetime
