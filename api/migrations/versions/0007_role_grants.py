"""Least-privilege roles: the row privileges of ``ece_app``, ``ece_cdc`` and ``ece_etl``.

Tables belong to ``ece_owner``, who runs the migrations; ``api/migrations/grants.py``
says what each role gets and why (the app cannot update or delete audit events or
ledger entries; nobody but the owner can run DDL or disable a trigger).
Downgrade revokes them again (the roles themselves belong to the cluster bootstrap).
"""

from collections.abc import Sequence

from alembic import op

from api.migrations.grants import GRANTS_SQL

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REVOKE_SQL = """
DO $revoke$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['ece_app', 'ece_cdc', 'ece_etl'] LOOP
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %I', r);
            EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM %I', r);
        END IF;
    END LOOP;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'ece_app') THEN
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM ece_app;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT ON SEQUENCES FROM ece_app;
    END IF;
END
$revoke$;
"""


def upgrade() -> None:
    op.execute(GRANTS_SQL)


def downgrade() -> None:
    op.execute(REVOKE_SQL)
