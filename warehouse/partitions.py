"""Daily partitions of the gold marts: replace one UTC day's rows in one lake transaction.

A gold SQL file is a query over the days ``:start`` .. ``:end`` (DATE literals;
``:lo`` / ``:hi`` are the TIMESTAMPTZ bounds of those days, ``[lo, hi)``, and
``:lo_30d`` is ``:lo`` minus 29 days for the rolling windows). Building days
D1..D2 runs, in ONE DuckLake transaction::

    CREATE TABLE IF NOT EXISTS <mart> AS <query> LIMIT 0   -- first build only
    DELETE FROM <mart> WHERE date BETWEEN D1 AND D2
    INSERT INTO <mart> BY NAME <query>
    COMMIT

so a rebuild gives the same rows as the first build, a crash leaves the old
rows, and a date never appears twice. Two writers of the same mart (the daemon's
sensor run and an operator's ``ece warehouse backfill``) could both delete
nothing and both insert (DuckLake sees no conflict between two appends), so each
build holds a PostgreSQL advisory lock on the lake catalog, one per mart, for the
length of its transaction. A killed process drops its catalog session and with
it the lock; its uncommitted transaction never reached the catalog.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import duckdb
import psycopg

from warehouse.lake import retry_conflicts
from warehouse.sql import SqlModel

PARTITION_COLUMN = "date"
ROLLING_DAYS = 30  # the longest trailing window a mart reads (market_trends' 30 days)
_TOKEN = re.compile(r"(?<![:\w]):(start|end|lo_30d|lo|hi)\b")


def is_partitioned(sql_model: SqlModel) -> bool:
    """A model built per day: its SQL is a query over ``:start`` .. ``:end``."""
    return bool(_TOKEN.search(sql_model.sql))


def _ts(day: date) -> str:
    return f"TIMESTAMPTZ '{datetime.combine(day, time(), UTC).isoformat()}'"


def render(sql_model: SqlModel, start: date, end: date) -> str:
    """The model's query for the days ``start`` .. ``end`` (inclusive), tokens filled in."""
    values = {"start": f"DATE '{start.isoformat()}'", "end": f"DATE '{end.isoformat()}'",
              "lo": _ts(start), "hi": _ts(end + timedelta(days=1)),
              "lo_30d": _ts(start - timedelta(days=ROLLING_DAYS - 1))}
    body = sql_model.sql.strip().removesuffix(";")
    return _TOKEN.sub(lambda m: values[m.group(1)], body)


def _lock_id(table: str) -> int:
    """A stable signed 64-bit advisory lock key for one mart."""
    return int.from_bytes(hashlib.sha256(f"ece.partition:{table}".encode()).digest()[:8],
                          "big", signed=True)


_sessions = threading.local()  # catalog -> this thread's lock session


def _session(catalog: str) -> psycopg.Connection[Any]:
    """This thread's catalog session for advisory locks, opened once and reused.

    Per thread, not per process: PostgreSQL advisory locks are reentrant within a
    session, so two threads sharing one would both "hold" the lock.
    """
    cache: dict[str, psycopg.Connection[Any]] = _sessions.__dict__.setdefault("by_catalog", {})
    pg = cache.get(catalog)
    if pg is None or pg.closed or pg.broken:
        pg = cache[catalog] = psycopg.connect(catalog, autocommit=True,
                                              application_name="ece-partitions")
    return pg


@contextlib.contextmanager
def mart_lock(catalog: str | None, table: str) -> Iterator[None]:
    """Hold the mart's advisory lock on the catalog database (no-op without a catalog)."""
    if catalog is None:
        yield
        return
    try:
        pg = _session(catalog)
        pg.execute("SELECT pg_advisory_lock(%s)", [_lock_id(table)])
    except psycopg.OperationalError:  # a session broken by a Postgres restart: once more
        _sessions.__dict__.get("by_catalog", {}).pop(catalog, None)
        pg = _session(catalog)
        pg.execute("SELECT pg_advisory_lock(%s)", [_lock_id(table)])
    try:
        yield
    finally:
        pg.execute("SELECT pg_advisory_unlock(%s)", [_lock_id(table)])


def _replace(con: duckdb.DuckDBPyConnection, sql_model: SqlModel, query: str,
             start: date, end: date) -> int:
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE TABLE IF NOT EXISTS {sql_model.table} AS "
                    f"SELECT * FROM ({query}) LIMIT 0")
        con.execute(f"DELETE FROM {sql_model.table} WHERE {PARTITION_COLUMN} BETWEEN ? AND ?",
                    [start, end])
        row = con.execute(f"INSERT INTO {sql_model.table} BY NAME {query}").fetchone()
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):  # a failed COMMIT already ended it
            con.execute("ROLLBACK")
        raise
    return int(row[0]) if row else 0


def build_days(con: duckdb.DuckDBPyConnection, sql_model: SqlModel, start: date, end: date,
               catalog: str | None) -> int:
    """Replace the mart's rows of ``start`` .. ``end`` in one transaction; returns rows written.

    ``catalog``: the lake catalog's connection string, for the mart's lock (None only
    where a single writer is certain, e.g. a benchmark's private lake).
    """
    if end < start:
        raise ValueError(f"{sql_model.table}: end {end} before start {start}")
    query = render(sql_model, start, end)
    with mart_lock(catalog, sql_model.table):
        return retry_conflicts(lambda: _replace(con, sql_model, query, start, end))


def days(start: date, end: date) -> list[date]:
    """Every date from ``start`` to ``end``, both included."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]
