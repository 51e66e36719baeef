"""Listings and sales.

A partial unique index allows at most one *active* listing per card, so two
concurrent "list this card" requests cannot both succeed; ``sales.listing_id`` is
unique, so a listing can be sold once even if two purchases race past the
application checks.
"""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, created_at, sql_in, updated_at, uuid_pk

LISTING_STATUSES = ("active", "sold", "cancelled")


class Listing(Base):
    __tablename__ = "listings"
    __table_args__ = (
        CheckConstraint("price_cents > 0", name="price_positive"),
        CheckConstraint(sql_in("status", LISTING_STATUSES), name="status"),
        Index(
            "uq_listings_active_card",
            "card_id",
            unique=True,
            postgresql_where=text("status = 'active'"),
        ),
        Index("ix_listings_status_created_at_id", "status", "created_at", "id"),
        Index("ix_listings_seller_id", "seller_id"),
    )
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = uuid_pk()
    card_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cards.id"))
    seller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    price_cents: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), server_default="active", default="active")
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class Sale(Base):
    __tablename__ = "sales"
    __table_args__ = (
        CheckConstraint("buyer_id <> seller_id", name="buyer_not_seller"),
        CheckConstraint("price_cents > 0", name="price_positive"),
        CheckConstraint("fee_cents >= 0 AND fee_cents <= price_cents", name="fee_range"),
        Index("ix_sales_card_id_created_at", "card_id", "created_at"),
        Index("ix_sales_created_at", "created_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    listing_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("listings.id"), unique=True)
    card_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cards.id"))
    buyer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    seller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    price_cents: Mapped[int] = mapped_column(BigInteger)
    fee_cents: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = created_at()
