"""Schema migrations as a stack step: Alembic to head before anything uses the database."""

from __future__ import annotations

from ops.stack.base import Part, PartFailed


class Migrate(Part):
    name = "migrate"
    depends_on = ("postgres",)

    def start(self) -> None:
        from api.migrations.runner import upgrade_to_head

        try:
            upgrade_to_head(self.settings.database_url)
        except Exception as exc:
            raise PartFailed(self.name, f"alembic upgrade failed: {exc}",
                             "read the traceback above; `uv run alembic -c api/alembic.ini "
                             "current` shows the database's revision") from exc

    def health(self) -> tuple[bool, str]:
        return True, "schema at head"
