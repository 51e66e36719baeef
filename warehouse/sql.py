"""The SQL files of each layer: discovered, their dependencies read, and executed.

Each table is one ``warehouse/<layer>/<table>.sql`` file holding the statement that
(re)builds ``ece.<layer>.<table>``. Dagster turns every file into an asset and
reads its upstream assets from the ``ece.<schema>.<table>`` references in the SQL,
so adding a table is adding one file, with no Python to keep in sync.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent
LAYERS: tuple[str, ...] = ("silver", "gold")
_REFERENCE = re.compile(r"\bece\.(bronze|silver|gold)\.([a-z_][a-z0-9_]*)", re.IGNORECASE)


@dataclass(frozen=True)
class SqlModel:
    """One table built by one SQL file."""

    layer: str
    name: str
    path: Path

    @property
    def table(self) -> str:
        return f"ece.{self.layer}.{self.name}"

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def description(self) -> str:
        """The leading ``--`` comment block: the table's documentation in the UI."""
        lines = []
        for line in self.sql.splitlines():
            if not line.startswith("--"):
                break
            lines.append(line[2:].strip())
        return "\n".join(lines).strip()

    @property
    def upstream(self) -> list[tuple[str, str]]:
        """(layer, table) pairs this SQL reads, itself excluded."""
        refs = {(m.group(1).lower(), m.group(2).lower()) for m in _REFERENCE.finditer(self.sql)}
        refs.discard((self.layer, self.name))
        return sorted(refs)


def models(layer: str) -> list[SqlModel]:
    folder = ROOT / layer
    if not folder.is_dir():
        return []
    return [SqlModel(layer, p.stem, p) for p in sorted(folder.glob("*.sql"))]


def model(layer: str, name: str) -> SqlModel:
    path = ROOT / layer / f"{name}.sql"
    if not path.exists():
        raise KeyError(f"no SQL for {layer}.{name} ({path})")
    return SqlModel(layer, name, path)


def build(con: duckdb.DuckDBPyConnection, sql_model: SqlModel) -> int:
    """Run the model's SQL in one transaction; returns the table's row count."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(sql_model.sql)
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):  # a failed COMMIT already ended it
            con.execute("ROLLBACK")
        raise
    row = con.execute(f"SELECT count(*) FROM {sql_model.table}").fetchone()
    return int(row[0]) if row else 0
