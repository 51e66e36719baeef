"""Real time: numbered notifications, the push outbox, watchlists and price alerts.

Revision ID: 0005
Revises: 0004

* ``notifications.seq``: the user's own counter (unique per user, > 0); existing
  rows are numbered in (created_at, id) order. ``notification_counters`` holds the
  last seq per user: the delivery worker locks one row per user it writes to, so
  seqs are gap-free without a global lock.
* ``(user_id, source_event_id, kind)`` is the natural key (was without kind): one
  new listing can be a ``watched_card_listed`` and a ``price_alert`` for one user.
* ``notifications.pushed_at``: NULL until Web Push was attempted to the end (the
  push outbox; a partial index finds the unpushed ones).
* The kinds follow the contract: ``auction_ending_soon``, ``watched_card_listed``
  and ``price_alert`` are added; ``new_listing`` (never produced) is gone.
* ``watchlists`` and ``price_alerts`` are captured (added to ``ece_cdc`` with
  ``REPLICA IDENTITY FULL``): the notification pipeline keeps watchers and alert
  owners in its state from their change stream.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = (
    "trade_offer_received", "trade_offer_accepted", "trade_offer_rejected", "listing_sold",
    "outbid", "auction_won", "auction_ended", "nft_minted", "card_received", "new_listing",
)
# A frozen copy of api.notifications.models.NOTIFICATION_KINDS at this revision.
NEW_KINDS = (
    "trade_offer_received", "trade_offer_accepted", "trade_offer_rejected", "listing_sold",
    "card_received", "outbid", "auction_won", "auction_ended", "auction_ending_soon",
    "nft_minted", "watched_card_listed", "price_alert",
)
NEW_CAPTURED = ("watchlists", "price_alerts")


def _kind_check(kinds: tuple[str, ...]) -> str:
    return f"kind IN ({', '.join(repr(k) for k in kinds)})"


def _timestamp(name: str, nullable: bool = False) -> sa.Column:
    if nullable:
        return sa.Column(name, sa.DateTime(timezone=True), nullable=True)
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.text("now()"),
                     nullable=False)


def upgrade() -> None:
    op.add_column("notifications", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.add_column("notifications", _timestamp("pushed_at", nullable=True))
    op.execute(
        "UPDATE notifications n SET seq = numbered.seq, pushed_at = now() FROM ("
        " SELECT id, row_number() OVER (PARTITION BY user_id ORDER BY created_at, id) AS seq"
        " FROM notifications) numbered WHERE numbered.id = n.id"
    )
    op.alter_column("notifications", "seq", nullable=False)
    op.create_check_constraint(op.f("ck_notifications_seq_positive"), "notifications", "seq > 0")
    op.create_unique_constraint(op.f("uq_notifications_user_id_seq"), "notifications",
                                ["user_id", "seq"])
    op.drop_index("ix_notifications_user_id_created_at_id", table_name="notifications")
    op.drop_constraint(op.f("uq_notifications_user_id_source_event_id"), "notifications",
                       type_="unique")
    op.create_unique_constraint(op.f("uq_notifications_user_id_source_event_id_kind"),
                                "notifications", ["user_id", "source_event_id", "kind"])
    op.create_index("ix_notifications_unpushed", "notifications", ["created_at"],
                    postgresql_where=sa.text("pushed_at IS NULL"))
    op.execute("DELETE FROM notifications WHERE kind = 'new_listing'")
    op.drop_constraint(op.f("ck_notifications_kind"), "notifications", type_="check")
    op.create_check_constraint(op.f("ck_notifications_kind"), "notifications",
                               _kind_check(NEW_KINDS))

    op.create_table(
        "notification_counters",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_notification_counters_user_id_users")),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_notification_counters")),
    )
    op.execute(
        "INSERT INTO notification_counters (user_id, last_seq)"
        " SELECT user_id, max(seq) FROM notifications GROUP BY user_id"
    )
    op.create_table(
        "watchlists",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("card_id", sa.Uuid(), nullable=False),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_watchlists_user_id_users")),
        sa.ForeignKeyConstraint(["card_id"], ["cards.id"],
                                name=op.f("fk_watchlists_card_id_cards")),
        sa.PrimaryKeyConstraint("user_id", "card_id", name=op.f("pk_watchlists")),
    )
    op.create_index("ix_watchlists_card_id", "watchlists", ["card_id"])
    op.create_table(
        "price_alerts",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("max_price_cents", sa.BigInteger(), nullable=False),
        sa.Column("card_id", sa.Uuid(), nullable=True),
        sa.Column("set_name", sa.String(length=200), nullable=True),
        sa.Column("rarity", sa.String(length=32), nullable=True),
        _timestamp("created_at"),
        sa.CheckConstraint("max_price_cents > 0", name=op.f("ck_price_alerts_max_price_positive")),
        sa.CheckConstraint(
            "card_id IS NOT NULL OR set_name IS NOT NULL OR rarity IS NOT NULL",
            name=op.f("ck_price_alerts_has_filter"),
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_price_alerts_user_id_users")),
        sa.ForeignKeyConstraint(["card_id"], ["cards.id"],
                                name=op.f("fk_price_alerts_card_id_cards")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_alerts")),
    )
    op.create_index("ix_price_alerts_user_id", "price_alerts", ["user_id"])
    for table in NEW_CAPTURED:
        op.execute(f"ALTER TABLE {table} REPLICA IDENTITY FULL")
    op.execute(f"ALTER PUBLICATION ece_cdc ADD TABLE {', '.join(NEW_CAPTURED)}")


def downgrade() -> None:
    op.execute(f"ALTER PUBLICATION ece_cdc DROP TABLE {', '.join(NEW_CAPTURED)}")
    op.drop_table("price_alerts")
    op.drop_table("watchlists")
    op.drop_table("notification_counters")
    op.drop_constraint(op.f("ck_notifications_kind"), "notifications", type_="check")
    op.execute("DELETE FROM notifications WHERE kind NOT IN ("
               + ", ".join(repr(k) for k in OLD_KINDS) + ")")
    op.create_check_constraint(op.f("ck_notifications_kind"), "notifications",
                               _kind_check(OLD_KINDS))
    op.drop_index("ix_notifications_unpushed", table_name="notifications")
    op.drop_constraint(op.f("uq_notifications_user_id_source_event_id_kind"), "notifications",
                       type_="unique")
    op.create_unique_constraint(op.f("uq_notifications_user_id_source_event_id"),
                                "notifications", ["user_id", "source_event_id"])
    op.create_index("ix_notifications_user_id_created_at_id", "notifications",
                    ["user_id", "created_at", "id"])
    op.drop_constraint(op.f("uq_notifications_user_id_seq"), "notifications", type_="unique")
    op.drop_constraint(op.f("ck_notifications_seq_positive"), "notifications", type_="check")
    op.drop_column("notifications", "pushed_at")
    op.drop_column("notifications", "seq")
