"""The work of one silver or gold asset, without Dagster: shared by the assets and the CLI.

The Dagster assets (:mod:`orchestration.assets`) and ``ece warehouse refresh``'s
in-process path (:mod:`orchestration.quick`) both call these, so a table is built
the same way whoever asks; each returns the materialization metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import duckdb

from warehouse import builds
from warehouse.lake import lake_tables
from warehouse.partitions import build_days
from warehouse.sql import SqlModel

Log = Callable[[str], None]


def _missing(sql_model: SqlModel, present: set[tuple[str, str]]) -> list[str]:
    return [f"ece.{layer}.{table}" for layer, table in sql_model.upstream
            if (layer, table) not in present]


def silver(con: duckdb.DuckDBPyConnection, sql_model: SqlModel, log: Log,
           present: set[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Rebuild a whole-table model unless its bronze inputs are unchanged."""
    tables = lake_tables(con) if present is None else present
    missing = _missing(sql_model, tables)
    if missing:
        # Nothing landed yet (fresh platform): not an error, just nothing to build.
        log(f"{sql_model.table}: skipped, {', '.join(missing)} not yet landed")
        return {"skipped": f"missing {', '.join(missing)}"}
    outcome = builds.build_if_changed(con, sql_model, tables)
    log(f"{sql_model.table}: {outcome.rows} rows"
        + (" (inputs unchanged)" if outcome.unchanged else ""))
    return {"rows": outcome.rows, "skipped": "no", "inputs_unchanged": outcome.unchanged}


def gold(con: duckdb.DuckDBPyConnection, sql_model: SqlModel, days: list[date],
         catalog: str | None, log: Log,
         present: set[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Replace the mart's partitions of ``days``, one lake transaction and log line per day."""
    tables = lake_tables(con) if present is None else present
    missing = _missing(sql_model, tables)
    if missing:
        log(f"{sql_model.table}: skipped, {', '.join(missing)} not yet landed")
        return {"skipped": f"missing {', '.join(missing)}"}
    total = 0
    for n, day in enumerate(days, 1):
        rows = build_days(con, sql_model, day, day, catalog)
        total += rows
        log(f"{sql_model.table} {day}: {rows} rows ({n}/{len(days)})")
    return {"rows": total, "days": len(days), "skipped": "no",
            "first_day": days[0].isoformat(), "last_day": days[-1].isoformat()}
