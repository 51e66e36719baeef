"""One view of PostgreSQL, the lake and the CDC topics that can be compared without racing.

The stores move while we look, so the order of the reads is the design:

1. the lake first, in one DuckLake transaction (bronze, silver, the landing's
   offsets and the silver builds' input fingerprints, all of one snapshot);
2. then PostgreSQL, in one ``REPEATABLE READ`` transaction: every captured table's
   primary key, ``xmin`` (the transaction that wrote the row's current version)
   and money columns. Everything the lake holds was committed before this;
3. then the CDC topics *after* the offsets that lake snapshot had landed: the
   changes committed since the last landing, which must not count as
   disagreements. :meth:`Pending.drain` reads further when a row version is still
   unexplained (Debezium is milliseconds behind a commit).

A row version is identified across the stores by its transaction: PostgreSQL's
``xmin`` is the ``source.txId`` Debezium puts on the change event (bronze
``tx_id``). A snapshot read (``op = 'r'``) carries the snapshot's transaction,
which is later than every version it read.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import psycopg
import pyarrow as pa
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from ece import db_roles
from ece.contracts.topics import CAPTURED_TABLES, EXCLUDED_COLUMNS, cdc_topic
from ece.kafka import epoch_of
from ece.settings import Settings
from quality.consistency.model import Unreachable
from warehouse.bronze.envelope import InvalidMessage, column_name, parse
from warehouse.lake import connect, lake_tables

PENDING_BATCH = 5_000
POLL_S = 0.3

_PK_SQL = """
SELECT a.attname FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = to_regclass(%s) AND i.indisprimary
ORDER BY array_position(i.indkey::int2[], a.attnum)
"""
_MONEY_SQL = """
SELECT column_name FROM information_schema.columns
WHERE table_schema = 'public' AND table_name = %s AND column_name LIKE '%%\\_cents'
  AND data_type IN ('smallint', 'integer', 'bigint') ORDER BY ordinal_position
"""


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def key_sql(columns: Iterable[str]) -> str:
    """The row key as text, the same in PostgreSQL and DuckDB (uuid and ints render alike)."""
    return "concat_ws('|', " + ", ".join(f"CAST({ident(c)} AS VARCHAR)" for c in columns) + ")"


@dataclass(frozen=True)
class Table:
    """A captured table as PostgreSQL defines it."""

    name: str
    keys: tuple[str, ...]
    money: tuple[str, ...]


def read_postgres(settings: Settings, tables: Iterable[str] = CAPTURED_TABLES
                  ) -> tuple[dict[str, Table], dict[str, pa.Table]]:
    """Every captured table's (key, xmin, money columns) in one consistent snapshot."""
    try:
        # as ece_etl, Dagster's read-only role: it may read what CDC captures, no more
        conn = psycopg.connect(settings.role_url(db_roles.ETL), connect_timeout=5)
    except psycopg.Error as exc:
        raise Unreachable("postgres", str(exc).strip().splitlines()[0]) from None
    specs: dict[str, Table] = {}
    data: dict[str, pa.Table] = {}
    with conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        for name in tables:
            keys = tuple(r[0] for r in conn.execute(_PK_SQL, [f"public.{name}"]).fetchall())
            if not keys:
                continue  # not in this schema version
            money = tuple(r[0] for r in conn.execute(_MONEY_SQL, [name]).fetchall())
            cols = ", ".join(ident(m) for m in money)
            rows = conn.execute(
                f"SELECT {key_sql(keys)} AS k, "
                f"(xmin::text)::bigint AS x{', ' + cols if cols else ''} "
                f"FROM public.{ident(name)}").fetchall()
            specs[name] = Table(name, keys, money)
            columns = ["k", "x", *money]
            data[name] = pa.table({c: [r[i] for r in rows] for i, c in enumerate(columns)},
                                  schema=pa.schema([("k", pa.string()), ("x", pa.int64()),
                                                    *[(m, pa.int64()) for m in money]]))
        conn.rollback()
    return specs, data


@dataclass
class Pending:
    """Change events on the CDC topics past what the lake snapshot had landed."""

    settings: Settings
    offsets: dict[tuple[str, str, int], int]  # (epoch, topic, partition) -> next offset
    specs: dict[str, Table]
    events: list[tuple[str, str, str, int | None]] = field(default_factory=list)
    consumer: Any = None
    epoch: str = ""

    def open(self) -> None:
        self.consumer = Consumer({
            "bootstrap.servers": self.settings.kafka_bootstrap,
            "group.id": "ece-consistency",  # required by librdkafka; never joined
            "enable.auto.commit": False, "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest", "fetch.wait.max.ms": 50,
        })
        try:
            meta = self.consumer.list_topics(timeout=10)
            self.epoch = epoch_of(meta)
        except (KafkaException, RuntimeError) as exc:
            self.close()
            raise Unreachable("kafka", str(exc)) from None
        assignment = []
        for name in self.specs:
            topic = cdc_topic(name, self.settings.topic_prefix)
            topic_meta = meta.topics.get(topic)
            if topic_meta is None or topic_meta.error is not None:
                continue
            for p in sorted(topic_meta.partitions):
                start = self.offsets.get((self.epoch, topic, p), 0)
                assignment.append(TopicPartition(topic, p, start))
        if assignment:
            self.consumer.assign(assignment)
        else:
            self.close()

    def drain(self) -> int:
        """Read what the topics hold now; returns how many events were read."""
        if self.consumer is None:
            return 0
        by_topic = {cdc_topic(n, self.settings.topic_prefix): n for n in self.specs}
        read = 0
        while True:
            msgs = self.consumer.consume(PENDING_BATCH, POLL_S)
            for msg in msgs:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise Unreachable("kafka", str(err))
                value = msg.value()
                name = by_topic.get(msg.topic() or "")
                if value is None or name is None:
                    continue  # a tombstone: the delete before it said it all
                try:
                    change = parse(msg.key(), value, frozenset(EXCLUDED_COLUMNS.get(name, ())))
                except InvalidMessage:
                    continue  # the landing dead-letters it; it is no row version
                key = "|".join(change.columns.get(column_name(c)) or ""
                               for c in self.specs[name].keys)
                self.events.append((name, key, change.op, change.tx_id))
                read += 1
            if len(msgs) < PENDING_BATCH:
                return read

    def table(self) -> pa.Table:
        return pa.table({"tbl": [e[0] for e in self.events], "k": [e[1] for e in self.events],
                         "op": [e[2] for e in self.events], "tx": [e[3] for e in self.events]},
                        schema=pa.schema([("tbl", pa.string()), ("k", pa.string()),
                                          ("op", pa.string()), ("tx", pa.int64())]))

    def close(self) -> None:
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                self.consumer.close()
            self.consumer = None


@dataclass
class Capture:
    """The three reads, in order, ready for the CDC and lake comparisons."""

    con: duckdb.DuckDBPyConnection
    present: set[tuple[str, str]]
    specs: dict[str, Table]
    pending: Pending
    builds: dict[str, str]  # silver table -> its last build's input fingerprint (JSON)
    seconds: dict[str, float] = field(default_factory=dict)

    def register(self) -> None:
        """Expose Postgres' rows and the pending events to DuckDB (after each drain)."""
        self.con.register("_pending", self.pending.table())

    def close(self) -> None:
        self.pending.close()
        with contextlib.suppress(duckdb.Error):
            self.con.execute("ROLLBACK")
        self.con.close()


def _lake(settings: Settings) -> duckdb.DuckDBPyConnection:
    try:
        return connect(settings, read_only=True)
    except (duckdb.Error, RuntimeError) as exc:
        raise Unreachable("lake", str(exc).strip().splitlines()[0]) from None


def _copy_bronze(con: duckdb.DuckDBPyConnection, present: set[tuple[str, str]], name: str,
                 spec: Table) -> None:
    """One read of a bronze table into memory (``_b_<table>``): every comparison reads
    the copy, since each scan of a lake table costs catalog round trips."""
    if ("bronze", name) in present:
        source = (f"SELECT {key_sql(spec.keys)} AS k, op, tx_id AS tx, _ingested_at "
                  f"FROM ece.bronze.{ident(name)}")
    else:
        source = ("SELECT CAST(NULL AS VARCHAR) AS k, CAST(NULL AS VARCHAR) AS op, "
                  "CAST(NULL AS BIGINT) AS tx, CAST(NULL AS TIMESTAMPTZ) AS _ingested_at "
                  "WHERE false")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _b_{name} AS {source}")


def capture(settings: Settings, tables: Iterable[str] = CAPTURED_TABLES) -> Capture:
    """Lake, then PostgreSQL, then the topics (see the module doc for why this order)."""
    started = time.perf_counter()
    con = _lake(settings)
    try:
        con.execute("BEGIN TRANSACTION")
        present = lake_tables(con)
        offsets: dict[tuple[str, str, int], int] = {}
        if ("bronze", "_offsets") in present:
            for epoch, topic, partition, nxt in con.execute(
                    'SELECT epoch, topic, "partition", max(next_offset) FROM ece.bronze._offsets '
                    "GROUP BY ALL").fetchall():
                offsets[(str(epoch), str(topic), int(partition))] = int(nxt)
        builds: dict[str, str] = {}
        if ("silver", "_builds") in present:
            builds = {str(t): str(i) for t, i in con.execute(
                "SELECT table_name, inputs FROM ece.silver._builds "
                "QUALIFY row_number() OVER (PARTITION BY table_name ORDER BY built_at DESC) = 1"
            ).fetchall()}
        lake_s = time.perf_counter() - started
        specs, data = read_postgres(settings, tables)
        pg_s = time.perf_counter() - started - lake_s
        for name, spec in specs.items():
            _copy_bronze(con, present, name, spec)
        pending = Pending(settings, offsets, specs)
        pending.open()
        pending.drain()
        for name, rows in data.items():
            con.register(f"_pg_{name}", rows)
        result = Capture(con, present, specs, pending, builds, {
            "lake": lake_s, "postgres": pg_s,
            "kafka": time.perf_counter() - started - lake_s - pg_s})
        result.register()
        return result
    except BaseException:
        con.close()
        raise
