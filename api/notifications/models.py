"""Notifications, their per-user counters, Web Push subscriptions, watchlists and alerts.

``(user_id, source_event_id, kind)`` is unique: the pipeline delivers at least once
and the delivery worker turns that into exactly once per user (one listing may be
both a ``watched_card_listed`` and a ``price_alert`` for the same user, hence kind).
``seq`` is the user's own gap-free counter, taken from ``notification_counters`` in the same
transaction as the insert: a row lock per *user*, never a global one, so two
users' notifications are stored in parallel. ``pushed_at`` is the Web Push
outbox: NULL until the push was sent (or the subscription was found gone), so a
delivery worker killed between commit and push pushes it after its restart.
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, created_at, sql_in, uuid_pk

NOTIFICATION_KINDS = (
    "trade_offer_received",
    "trade_offer_accepted",
    "trade_offer_rejected",
    "listing_sold",
    "card_received",
    "outbid",
    "auction_won",
    "auction_ended",
    "auction_ending_soon",
    "nft_minted",
    "watched_card_listed",
    "price_alert",
)


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint(sql_in("kind", NOTIFICATION_KINDS), name="kind"),
        CheckConstraint("seq > 0", name="seq_positive"),
        UniqueConstraint("user_id", "source_event_id", "kind"),
        UniqueConstraint("user_id", "seq"),
        Index("ix_notifications_unpushed", "created_at",
              postgresql_where=text("pushed_at IS NULL")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(
        server_default=text("'{}'::jsonb"), default=dict
    )
    source_event_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_at()
    read_at: Mapped[datetime | None]
    pushed_at: Mapped[datetime | None]


class NotificationCounter(Base):
    """The last ``seq`` handed out per user (one row per user, locked per insert batch)."""

    __tablename__ = "notification_counters"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class PushSubscription(Base):
    __tablename__ = "push_subscriptions"
    __table_args__ = (Index("ix_push_subscriptions_user_id", "user_id"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    endpoint: Mapped[str] = mapped_column(Text, unique=True)
    p256dh: Mapped[str] = mapped_column(String(200))
    auth: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = created_at()


class WatchlistEntry(Base):
    """A user watches a card: new listings and auctions of it notify them."""

    __tablename__ = "watchlists"
    __table_args__ = (Index("ix_watchlists_card_id", "card_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    card_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cards.id"), primary_key=True)
    created_at: Mapped[datetime] = created_at()


class PriceAlert(Base):
    """A new listing at or below ``max_price_cents`` matching every given filter notifies."""

    __tablename__ = "price_alerts"
    __table_args__ = (
        CheckConstraint("max_price_cents > 0", name="max_price_positive"),
        CheckConstraint(
            "card_id IS NOT NULL OR set_name IS NOT NULL OR rarity IS NOT NULL",
            name="has_filter",
        ),
        Index("ix_price_alerts_user_id", "user_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    max_price_cents: Mapped[int] = mapped_column(BigInteger)
    card_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cards.id"))
    set_name: Mapped[str | None] = mapped_column(String(200))
    rarity: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = created_at()
