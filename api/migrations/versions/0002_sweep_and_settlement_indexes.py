"""Indexes for the workers' sweeps, and settlement-once enforced by the database.

Revision ID: 0002
Revises: 0001

* ``trade_offers``: the expirer scans pending offers by due time every second;
  a partial index keeps that independent of the table's history.
* ``wallet_challenges``: wallet login reads the address's newest challenges.
* ``ledger_transactions``: at most one ``auction_settlement`` per auction, so
  exactly-once closing no longer rests only on the closer's status guard.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_trade_offers_pending_expires_at",
        "trade_offers",
        ["expires_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_wallet_challenges_address_created_at",
        "wallet_challenges",
        ["address", "created_at"],
    )
    op.create_index(
        "uq_ledger_transactions_auction_settlement",
        "ledger_transactions",
        ["reference_id"],
        unique=True,
        postgresql_where=sa.text("kind = 'auction_settlement'"),
    )


def downgrade() -> None:
    op.drop_index("uq_ledger_transactions_auction_settlement", "ledger_transactions")
    op.drop_index("ix_wallet_challenges_address_created_at", "wallet_challenges")
    op.drop_index("ix_trade_offers_pending_expires_at", "trade_offers")
