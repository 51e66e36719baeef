"""``ece.quality.check_results``: every check outcome, queryable next to the data.

Dagster keeps check results in its own instance; writing them into the lake too
lets analysts and the system-health report join quality with the tables it
describes, from any DuckDB.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import duckdb

from quality.suite import CheckOutcome
from warehouse.lake import retry_conflicts

TABLE = "ece.quality.check_results"


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    retry_conflicts(lambda: con.execute("CREATE SCHEMA IF NOT EXISTS ece.quality"))
    retry_conflicts(lambda: con.execute(f"""
        CREATE TABLE IF NOT EXISTS {TABLE} (
            run_id VARCHAR NOT NULL,
            asset VARCHAR NOT NULL,
            "check" VARCHAR NOT NULL,
            success BOOLEAN NOT NULL,
            observed_value VARCHAR,
            details JSON,
            checked_at TIMESTAMP WITH TIME ZONE NOT NULL
        )"""))


def record(con: duckdb.DuckDBPyConnection, run_id: str, asset: str,
           outcomes: Sequence[CheckOutcome]) -> None:
    """Append one row per outcome (one transaction: all of a run's rows or none)."""
    ensure_table(con)
    now = datetime.now(UTC)
    con.execute("BEGIN TRANSACTION")
    try:
        con.executemany(
            f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?)",
            [[run_id, asset, o.check, o.success, o.observed_value, o.details_json, now]
             for o in outcomes])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
