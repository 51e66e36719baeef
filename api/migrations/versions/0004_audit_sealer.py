"""Audit events without a global lock: unsealed inserts, a single HMAC sealer, anchors.

Revision ID: 0004
Revises: 0003

* ``audit_events.xid``: the writer's top-level transaction id, stamped by a
  BEFORE INSERT trigger (``pg_current_xact_id()``), so no writer can choose it;
  ``prev_hash`` / ``hash`` become nullable (new rows are sealed elsewhere).
* Existing rows (chained by the old keyless SHA-256 rule under the global lock)
  get ``xid = 0``: the sealer re-seals them first, in their old chain (id) order,
  under the HMAC key, and ``verify`` keeps checking their old SHA-256 links, so
  a pre-migration rewrite is still reported. No key is needed to migrate.
* ``audit_seals`` (insert-only, written by the sealer), ``audit_chain_head`` (the
  one row the sealer updates, ``FOR UPDATE``), ``audit_anchors`` (insert-only).
  ``audit_seals.event_id`` has no foreign key, so ``TRUNCATE audit_events`` still
  reaches the refusing trigger; ``verify`` reports a seal whose event is missing.
  ``audit_events`` stays insert-only: the app never updates it.
* The new tables are not captured (not in ``ece_cdc``): seals and anchors are
  integrity metadata, checked by ``GET /admin/audit/verify``, not business data.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_APPEND_ONLY = ("audit_seals", "audit_anchors")

STAMP_SQL = """
CREATE FUNCTION ece_audit_stamp_xid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.xid := pg_current_xact_id()::text::bigint;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_events_stamp_xid BEFORE INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION ece_audit_stamp_xid();
"""

HEAD_GUARD_SQL = """
CREATE TRIGGER audit_chain_head_no_delete BEFORE DELETE ON audit_chain_head
    FOR EACH ROW EXECUTE FUNCTION ece_refuse_change();
CREATE TRIGGER audit_chain_head_no_truncate BEFORE TRUNCATE ON audit_chain_head
    FOR EACH STATEMENT EXECUTE FUNCTION ece_refuse_change();
"""


def upgrade() -> None:
    op.add_column(
        "audit_events",
        sa.Column("xid", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )
    op.alter_column("audit_events", "prev_hash", existing_type=sa.String(64), nullable=True)
    op.alter_column("audit_events", "hash", existing_type=sa.String(64), nullable=True)
    op.create_index("ix_audit_events_xid_id", "audit_events", ["xid", "id"])
    op.execute(STAMP_SQL)
    op.create_table(
        "audit_seals",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_seals")),
        sa.UniqueConstraint("event_id", name=op.f("uq_audit_seals_event_id")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_seals_hash")),
        sa.CheckConstraint("seq > 0", name=op.f("ck_audit_seals_seq_positive")),
    )
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("last_xid", sa.BigInteger(), nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_chain_head_single_row")),
    )
    op.create_table(
        "audit_anchors",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=100), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_anchors")),
        sa.UniqueConstraint("signature", name=op.f("uq_audit_anchors_signature")),
    )
    # Frontier before everything: legacy rows have xid 0 > -1.
    op.execute("INSERT INTO audit_chain_head (id, seq, hash, last_xid, last_event_id) "
               f"VALUES (1, 0, '{'0' * 64}', -1, 0)")
    for table in NEW_APPEND_ONLY:
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION ece_refuse_change()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION ece_refuse_change()")
    op.execute(HEAD_GUARD_SQL)


def downgrade() -> None:
    op.drop_table("audit_anchors")
    op.drop_table("audit_chain_head")
    op.drop_table("audit_seals")
    op.execute("DROP TRIGGER IF EXISTS audit_events_stamp_xid ON audit_events")
    op.execute("DROP FUNCTION IF EXISTS ece_audit_stamp_xid()")
    op.drop_index("ix_audit_events_xid_id", table_name="audit_events")
    op.drop_column("audit_events", "xid")
    # Rows sealed only by the HMAC sealer have no keyless hash: prev_hash/hash stay nullable.
