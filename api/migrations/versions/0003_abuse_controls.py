"""Abuse controls: one credit per deposit reference; wallet challenges bound to a purpose.

Revision ID: 0003
Revises: 0002

* ``ledger_transactions``: a deposit's ``reference_id`` (the UUIDv5 of its external
  reference) is unique among deposits, so a retried deposit can never credit twice.
  Rows are append-only history, so deposits that an older version already credited
  twice cannot be removed; the index leaves those later duplicates out (by id, listed
  in its predicate) and covers the first of each, so their references are taken too.
* ``wallet_challenges.purpose`` (``login`` | ``link``, existing rows ``login``), and
  an index on ``expires_at`` for the housekeeping purge.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEPOSIT_INDEX = "uq_ledger_transactions_deposit_reference"

LATER_DUPLICATES = """
SELECT id FROM (
  SELECT id, row_number() OVER (PARTITION BY reference_id ORDER BY created_at, id) AS n
  FROM ledger_transactions WHERE kind = 'deposit' AND reference_id IS NOT NULL
) ranked WHERE n > 1 ORDER BY id
"""


def upgrade() -> None:
    later = [str(row[0]) for row in op.get_bind().execute(sa.text(LATER_DUPLICATES))]
    where = "kind = 'deposit'"
    if later:
        ids = ", ".join(f"'{uuid}'::uuid" for uuid in later)  # uuids from the database
        where += f" AND id <> ALL (ARRAY[{ids}])"
    op.create_index(
        DEPOSIT_INDEX,
        "ledger_transactions",
        ["reference_id"],
        unique=True,
        postgresql_where=sa.text(where),
    )
    op.add_column(
        "wallet_challenges",
        sa.Column("purpose", sa.String(length=8), server_default="login", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_wallet_challenges_purpose"), "wallet_challenges", "purpose IN ('login', 'link')"
    )
    op.create_index("ix_wallet_challenges_expires_at", "wallet_challenges", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_wallet_challenges_expires_at", "wallet_challenges")
    op.drop_constraint(op.f("ck_wallet_challenges_purpose"), "wallet_challenges", type_="check")
    op.drop_column("wallet_challenges", "purpose")
    op.drop_index(DEPOSIT_INDEX, "ledger_transactions")
