"""Auctions and bids.

The CHECKs tie the denormalised leader fields together (a current bid always has
a bidder and vice versa, the leader is never the seller, a result exists exactly
when the auction ended), and a partial unique index allows one active auction per
card.
"""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, created_at, sql_in, updated_at, uuid_pk

AUCTION_STATUSES = ("active", "ended", "cancelled")
AUCTION_RESULTS = ("sold", "no_sale")


class Auction(Base):
    __tablename__ = "auctions"
    __table_args__ = (
        CheckConstraint("start_price_cents > 0", name="start_price_positive"),
        CheckConstraint(
            "reserve_price_cents IS NULL OR reserve_price_cents >= start_price_cents",
            name="reserve_not_below_start",
        ),
        CheckConstraint("min_increment_cents > 0", name="increment_positive"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("bid_count >= 0", name="bid_count_non_negative"),
        CheckConstraint(
            "(current_bid_cents IS NULL) = (current_bidder_id IS NULL)", name="leader_complete"
        ),
        CheckConstraint("(current_bid_cents IS NULL) = (bid_count = 0)", name="leader_iff_bids"),
        CheckConstraint(
            "current_bid_cents IS NULL OR current_bid_cents >= start_price_cents",
            name="current_bid_not_below_start",
        ),
        CheckConstraint("current_bidder_id IS DISTINCT FROM seller_id", name="seller_not_leader"),
        CheckConstraint(sql_in("status", AUCTION_STATUSES), name="status"),
        CheckConstraint(f"result IS NULL OR {sql_in('result', AUCTION_RESULTS)}", name="result"),
        CheckConstraint("(status = 'ended') = (result IS NOT NULL)", name="result_iff_ended"),
        CheckConstraint("result IS DISTINCT FROM 'sold' OR bid_count > 0", name="sold_has_bid"),
        Index(
            "uq_auctions_active_card",
            "card_id",
            unique=True,
            postgresql_where=text("status = 'active'"),
        ),
        Index("ix_auctions_status_ends_at", "status", "ends_at"),
        Index("ix_auctions_seller_id", "seller_id"),
    )
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = uuid_pk()
    card_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cards.id"))
    seller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    start_price_cents: Mapped[int] = mapped_column(BigInteger)
    reserve_price_cents: Mapped[int | None] = mapped_column(BigInteger)
    min_increment_cents: Mapped[int] = mapped_column(BigInteger, server_default="100", default=100)
    current_bid_cents: Mapped[int | None] = mapped_column(BigInteger)
    current_bidder_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    bid_count: Mapped[int] = mapped_column(Integer, server_default="0", default=0)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), server_default="active", default="active")
    result: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class Bid(Base):
    __tablename__ = "bids"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="amount_positive"),
        Index("ix_bids_auction_id_created_at", "auction_id", "created_at"),
        Index("ix_bids_bidder_id", "bidder_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    auction_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("auctions.id"))
    bidder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = created_at()
