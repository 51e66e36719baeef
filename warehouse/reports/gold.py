"""Read one date's partition of a gold mart as a report section.

A report's figures must equal the mart's rows of that date, so the section holds
the rows exactly as the lake returns them (every column, in the table's order),
only sorted for reading. A mart not built yet or a lake that cannot be read is a
section that says so, never an exception: the other sections still render.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import duckdb

from warehouse.lake import ALIAS, table_columns
from warehouse.partitions import PARTITION_COLUMN
from warehouse.reports.model import Section


def mart_section(con: duckdb.DuckDBPyConnection | None, mart: str, day: date, title: str,
                 order_by: str, key_columns: int = 1, tables: set[tuple[str, str]] | None = None,
                 shown: int = 25) -> Section:
    """``ece.gold.<mart>`` where ``date = day``, ordered by ``order_by``."""
    source = f"{ALIAS}.gold.{mart} (partition date = {day.isoformat()})"
    base = Section(key=f"gold.{mart}", title=title, source=source, key_columns=key_columns,
                   shown=shown)
    if con is None:
        return replace(base, unavailable="the lake could not be opened")
    if tables is not None and ("gold", mart) not in tables:
        return replace(base, unavailable=f"{ALIAS}.gold.{mart} does not exist yet "
                                          "(no refresh has built it)")
    try:
        columns = table_columns(con, "gold", mart)
        cursor = con.execute(
            f"SELECT * FROM {ALIAS}.gold.{mart} WHERE {PARTITION_COLUMN} = ? "
            f"ORDER BY {order_by}", [day])
        rows = [tuple(r) for r in cursor.fetchall()]
    except duckdb.Error as exc:
        return replace(base, unavailable=f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
    return replace(base, columns=columns, rows=rows,
                    empty=f"{ALIAS}.gold.{mart} has no row for {day.isoformat()}")

