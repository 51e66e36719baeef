"""Cards, their ownership history and valuations.

``cards.version`` is bumped by a BEFORE UPDATE trigger on every update, whoever
issues it (ORM, raw SQL in marketplace code, a manual fix). The Redis cache and
ETags key on it, so it must never be forgotten by a code path. The ORM maps it as
a server-generated version column: it reads the new value back with RETURNING and
uses the old one in the WHERE clause (optimistic concurrency for free).

Uniqueness: (set_name, number, edition) is NOT unique. Physical cards are
individual items: two copies of the same print are two rows with two owners, so
only the id identifies a card.
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, created_at, sql_in, updated_at, uuid_pk

RARITIES = ("common", "uncommon", "rare", "epic", "legendary")
CARD_STATUSES = ("available", "listed", "in_auction")
HISTORY_REASONS = ("issue", "sale", "trade", "auction")
VALUATION_SOURCES = ("sale", "auction", "appraisal")


class Card(Base):
    __tablename__ = "cards"
    __table_args__ = (
        CheckConstraint(sql_in("rarity", RARITIES), name="rarity"),
        CheckConstraint(sql_in("status", CARD_STATUSES), name="status"),
        CheckConstraint("length(name) BETWEEN 1 AND 200", name="name_length"),
        CheckConstraint("length(set_name) BETWEEN 1 AND 200", name="set_name_length"),
        CheckConstraint("length(number) BETWEEN 1 AND 32", name="number_length"),
        CheckConstraint("jsonb_typeof(attributes) = 'object'", name="attributes_object"),
        CheckConstraint("version >= 1", name="version_positive"),
        Index("ix_cards_owner_id_created_at_id", "owner_id", "created_at", "id"),
        Index("ix_cards_created_at_id", "created_at", "id"),
        Index("ix_cards_set_name", "set_name"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(200))
    set_name: Mapped[str] = mapped_column(String(200))
    number: Mapped[str] = mapped_column(String(32))
    rarity: Mapped[str] = mapped_column(String(16))
    edition: Mapped[str | None] = mapped_column(String(64))
    attributes: Mapped[dict[str, Any]] = mapped_column(
        server_default=text("'{}'::jsonb"), default=dict
    )
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16), server_default="available", default="available")
    image_object_key: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()

    __mapper_args__ = {
        "version_id_col": version,
        "version_id_generator": False,
        "eager_defaults": True,
    }


class CardHistory(Base):
    """One row per change of owner; ``from_user_id`` is NULL exactly for the issue row."""

    __tablename__ = "card_history"
    __table_args__ = (
        CheckConstraint(sql_in("reason", HISTORY_REASONS), name="reason"),
        CheckConstraint("(reason = 'issue') = (from_user_id IS NULL)", name="issue_has_no_sender"),
        CheckConstraint("from_user_id IS DISTINCT FROM to_user_id", name="real_transfer"),
        Index("ix_card_history_card_id_at", "card_id", "at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    card_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cards.id"))
    from_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    to_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(String(16))
    reference_id: Mapped[uuid.UUID | None]
    at: Mapped[datetime] = created_at()


class CardValuation(Base):
    __tablename__ = "card_valuations"
    __table_args__ = (
        CheckConstraint("value_cents > 0", name="value_positive"),
        CheckConstraint(sql_in("source", VALUATION_SOURCES), name="source"),
        Index("ix_card_valuations_card_id_at", "card_id", "at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    card_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cards.id"))
    value_cents: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = created_at()
