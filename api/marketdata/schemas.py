"""Answers of the market-data endpoints (integer cents, RFC 3339 times)."""

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

LeaderboardKind = Literal["traders", "collectors"]


class CardPriceOut(BaseModel):
    card_id: uuid.UUID
    last_sale_cents: int | None
    last_sale_at: datetime | None
    sales_24h: int
    volume_24h_cents: int
    floor_listing_cents: int | None
    updated_at: datetime


class MarketStatsOut(BaseModel):
    sales_24h: int
    volume_24h_cents: int
    active_listings: int
    active_auctions: int
    floor_listing_cents: int | None


class LeaderboardEntry(BaseModel):
    rank: int
    user_id: uuid.UUID
    username: str
    score: int


class LeaderboardOut(BaseModel):
    kind: LeaderboardKind
    updated_at: datetime
    entries: list[LeaderboardEntry]
