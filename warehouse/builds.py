"""Rebuild a whole-table model only when its bronze inputs changed.

Bronze is append-only (landing only inserts), so a bronze table's row count and
latest ``_ingested_at`` say whether anything landed since a build (and a hash of the SQL whether the
model itself changed). Each build records that
fingerprint in ``ece.silver._builds`` in the same transaction as the table, so
the next refresh (the CLI's, the sensor's) skips tables whose inputs are as they
were: a small delta on three topics rebuilds the silver tables reading those
three, not all of them. A model reading anything but bronze is always rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass

import duckdb

from warehouse.lake import lake_tables, retry_conflicts
from warehouse.sql import SqlModel

BUILDS = "ece.silver._builds"


@dataclass(frozen=True)
class Outcome:
    rows: int
    unchanged: bool


def fingerprint(con: duckdb.DuckDBPyConnection, sql_model: SqlModel) -> str | None:
    """The inputs' state as text, or None when it cannot be told (non-bronze inputs)."""
    if not sql_model.upstream or any(layer != "bronze" for layer, _ in sql_model.upstream):
        return None
    state: dict[str, object] = {"sql": hashlib.sha256(sql_model.sql.encode()).hexdigest()[:16]}
    for _, table in sql_model.upstream:
        row = con.execute(f'SELECT count(*), CAST(max(_ingested_at) AS VARCHAR) '
                          f'FROM ece.bronze."{table}"').fetchone()
        state[table] = [int(row[0]), row[1]] if row else [0, None]
    return json.dumps(state, sort_keys=True)


def _ensure(con: duckdb.DuckDBPyConnection, present: set[tuple[str, str]]) -> None:
    if ("silver", "_builds") not in present:
        retry_conflicts(lambda: con.execute(
            f"CREATE TABLE IF NOT EXISTS {BUILDS} (table_name VARCHAR, inputs VARCHAR, "
            "row_count BIGINT, built_at TIMESTAMPTZ)"))


def _recorded(con: duckdb.DuckDBPyConnection, table: str) -> tuple[str, int] | None:
    row = con.execute(f"SELECT inputs, row_count FROM {BUILDS} WHERE table_name = ? "
                      "ORDER BY built_at DESC LIMIT 1", [table]).fetchone()
    return (str(row[0]), int(row[1])) if row else None


def _build(con: duckdb.DuckDBPyConnection, sql_model: SqlModel, exists: bool) -> Outcome:
    con.execute("BEGIN TRANSACTION")
    try:
        inputs = fingerprint(con, sql_model)
        seen = _recorded(con, sql_model.table)
        if inputs is not None and seen is not None and seen[0] == inputs and exists:
            con.execute("ROLLBACK")
            return Outcome(rows=seen[1], unchanged=True)
        con.execute(sql_model.sql)
        row = con.execute(f"SELECT count(*) FROM {sql_model.table}").fetchone()
        rows = int(row[0]) if row else 0
        con.execute(f"DELETE FROM {BUILDS} WHERE table_name = ?", [sql_model.table])
        con.execute(f"INSERT INTO {BUILDS} VALUES (?, ?, ?, now())",
                    [sql_model.table, inputs or "", rows])
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):  # a failed COMMIT already ended it
            con.execute("ROLLBACK")
        raise
    return Outcome(rows=rows, unchanged=False)


def build_if_changed(con: duckdb.DuckDBPyConnection, sql_model: SqlModel,
                     present: set[tuple[str, str]] | None = None) -> Outcome:
    """Build ``sql_model`` in one transaction unless its bronze inputs are unchanged.

    ``present``: the lake's tables (:func:`warehouse.lake.lake_tables`) if known.
    """
    tables = lake_tables(con) if present is None else present
    _ensure(con, tables)
    exists = (sql_model.layer, sql_model.name) in tables
    return retry_conflicts(lambda: _build(con, sql_model, exists))
