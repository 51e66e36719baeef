"""Notifications and Web Push subscriptions.

``(user_id, source_event_id)`` is unique: the pipeline delivers at least once and
an insert ... ON CONFLICT DO NOTHING turns that into exactly once per user. The
uniqueness is per user (not global) so one broadcast event (``new_listing``) can
notify many users under the same source event id.
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, created_at, sql_in, uuid_pk

NOTIFICATION_KINDS = (
    "trade_offer_received",
    "trade_offer_accepted",
    "trade_offer_rejected",
    "listing_sold",
    "outbid",
    "auction_won",
    "auction_ended",
    "nft_minted",
    "card_received",
    "new_listing",
)


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint(sql_in("kind", NOTIFICATION_KINDS), name="kind"),
        UniqueConstraint("user_id", "source_event_id"),
        Index("ix_notifications_user_id_created_at_id", "user_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(
        server_default=text("'{}'::jsonb"), default=dict
    )
    source_event_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_at()
    read_at: Mapped[datetime | None]


class PushSubscription(Base):
    __tablename__ = "push_subscriptions"
    __table_args__ = (Index("ix_push_subscriptions_user_id", "user_id"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    endpoint: Mapped[str] = mapped_column(Text, unique=True)
    p256dh: Mapped[str] = mapped_column(String(200))
    auth: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = created_at()
