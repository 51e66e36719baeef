"""Trade offers and the cards on each side of them."""

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, created_at, sql_in, updated_at, uuid_pk

OFFER_STATUSES = ("pending", "accepted", "rejected", "cancelled", "expired")
OFFER_SIDES = ("offered", "requested")


class TradeOffer(Base):
    __tablename__ = "trade_offers"
    __table_args__ = (
        CheckConstraint("from_user_id <> to_user_id", name="distinct_parties"),
        CheckConstraint(sql_in("status", OFFER_STATUSES), name="status"),
        CheckConstraint("expires_at > created_at", name="expiry_after_creation"),
        CheckConstraint("length(message) <= 1000", name="message_length"),
        Index("ix_trade_offers_from_user_id_created_at", "from_user_id", "created_at"),
        Index("ix_trade_offers_to_user_id_created_at", "to_user_id", "created_at"),
        # The expirer's sweep: only pending offers, by due time.
        Index(
            "ix_trade_offers_pending_expires_at",
            "expires_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = uuid_pk()
    from_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    to_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    message: Mapped[str | None] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(16), server_default="pending", default="pending")
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class TradeOfferCard(Base):
    __tablename__ = "trade_offer_cards"
    __table_args__ = (
        CheckConstraint(sql_in("side", OFFER_SIDES), name="side"),
        Index("ix_trade_offer_cards_card_id", "card_id"),
    )

    offer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("trade_offers.id"), primary_key=True)
    card_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cards.id"), primary_key=True)
    side: Mapped[str] = mapped_column(String(16))
