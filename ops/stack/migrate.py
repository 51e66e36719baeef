"""Schema migrations as a stack step: Alembic to head before anything uses the database.

Migrations run as ``ece_owner`` (``Settings.role_url``), the role that owns every
table; afterwards the row grants of the other roles (``api/migrations/grants.py``)
are applied again, so tables added by any migration are covered.
"""

from __future__ import annotations

import psycopg

from ece.db_roles import OWNER
from ops.stack.base import Part, PartFailed


class Migrate(Part):
    name = "migrate"
    depends_on = ("postgres",)

    def start(self) -> None:
        from api.migrations.grants import GRANTS_SQL
        from api.migrations.runner import upgrade_to_head

        owner_url = self.settings.role_url(OWNER)
        try:
            upgrade_to_head(owner_url)
            with psycopg.connect(owner_url, autocommit=True, connect_timeout=10) as conn:
                conn.execute(GRANTS_SQL)
        except Exception as exc:
            raise PartFailed(self.name, f"alembic upgrade failed: {exc}",
                             "read the traceback above; `uv run alembic -c api/alembic.ini "
                             "current` shows the database's revision") from exc

    def health(self) -> tuple[bool, str]:
        return True, "schema at head"
