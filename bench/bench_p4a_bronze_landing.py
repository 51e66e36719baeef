"""P4a: bronze landing of N synthetic CDC events (events/s) against DuckDB inserting the same rows.

Starts PostgreSQL (the DuckLake catalog) and the broker on free ports, produces N
Debezium-shaped change events (``--events``, default 1,000,000) to the CDC topics
of ``cards``, ``listings`` and ``sales`` (a third each, 2 partitions per topic,
commit times spread over 5 UTC days), then times the real landing
(:func:`warehouse.bronze.land`: consume, parse each envelope, one lake
transaction per batch with its offsets) with the knobs of ``--knobs`` (an
environment of :data:`orchestration.resources.LANDING_BY_ENV`; ``dev`` is what
``make up`` runs), called again while a topic is capped, until nothing is left.

Baseline, same run: the landed rows of each table are written to a Parquet file
(untimed), then DuckDB inserts that file into a new lake table of the same shape
(same columns and types, partitioned by ``_day``), one INSERT per table. Both
rates and their ratio are printed.

Run with ``uv run python -m bench.bench_p4a_bronze_landing [--events N] [--knobs dev|prod]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

import duckdb
from confluent_kafka import Producer

from bench.harness import throwaway_platform
from ece.contracts.topics import cdc_topic
from ece.kafka import ensure_topics, producer_config
from ece.settings import Settings, get_settings
from orchestration.resources import LANDING_BY_ENV
from warehouse.bronze import LandingConfig, land
from warehouse.lake import connect

TABLES = ("cards", "listings", "sales")
PARTITIONS = 2
DAYS = 5
START_MS = 1_772_323_200_000  # 2026-03-01T00:00:00Z
RARITIES = ("common", "uncommon", "rare", "epic", "legendary")


def _row(table: str, i: int, stamp: str) -> dict[str, object]:
    """The ``after`` image of event ``i``: the table's real columns, varied values."""
    key = str(uuid.UUID(int=i))
    user = str(uuid.UUID(int=(i * 7919) % 50_000 + 1 << 64))
    if table == "cards":
        return {"id": key, "name": f"Card {i}", "set_name": f"Set {i % 40}",
                "number": f"{i % 500:03d}", "rarity": RARITIES[i % 5], "edition": "1st",
                "attributes": json.dumps({"hp": i % 200, "atk": i % 97}), "owner_id": user,
                "status": "available", "image_object_key": None, "version": 1 + i % 9,
                "created_at": stamp, "updated_at": stamp}
    price = 100 + (i * 31) % 100_000
    if table == "listings":
        return {"id": key, "card_id": str(uuid.UUID(int=i // 3)), "seller_id": user,
                "price_cents": price, "status": "sold" if i % 4 else "active",
                "created_at": stamp, "updated_at": stamp}
    return {"id": key, "listing_id": str(uuid.UUID(int=i - 1)),
            "card_id": str(uuid.UUID(int=i // 3)), "buyer_id": user,
            "seller_id": str(uuid.UUID(int=(i * 104729) % 50_000 + 1 << 64)),
            "price_cents": price, "fee_cents": price * 250 // 10_000, "created_at": stamp}


def produce(settings: Settings, events: int) -> float:
    """``events`` change events round-robin over the tables, LSNs increasing; seconds taken."""
    ensure_topics(settings, [cdc_topic(t, settings.topic_prefix) for t in TABLES],
                  partitions=PARTITIONS)
    producer = Producer({**producer_config(settings, linger_ms=50, compression=None),
                         "queue.buffering.max.messages": 1_000_000, "batch.num.messages": 10_000})
    spread_ms = DAYS * 86_400_000
    started = time.perf_counter()
    for i in range(events):
        table = TABLES[i % len(TABLES)]
        ts_ms = START_MS + i * spread_ms // events
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts_ms / 1000)) + "Z"
        row = _row(table, i + 1, stamp)
        lsn = 10_000 + 8 * i
        value = {"before": None, "after": row, "op": "c", "ts_ms": ts_ms + 5,
                 "source": {"lsn": lsn, "txId": lsn // 8, "ts_ms": ts_ms, "table": table,
                            "schema": "public", "db": "ece", "connector": "postgresql"}}
        message = (cdc_topic(table, settings.topic_prefix), json.dumps({"id": row["id"]}).encode(),
                   json.dumps(value).encode())
        while True:
            try:
                producer.produce(message[0], key=message[1], value=message[2])
                break
            except BufferError:  # the local queue is full: let librdkafka send
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    undelivered = producer.flush(120)
    if undelivered:
        raise RuntimeError(f"{undelivered} events undelivered")
    return time.perf_counter() - started


def land_all(con: duckdb.DuckDBPyConnection, config: LandingConfig) -> tuple[int, float, int]:
    """Land until a pass lands nothing: (rows, seconds, passes)."""
    rows, passes = 0, 0
    started = time.perf_counter()
    while True:
        passes += 1
        landed = sum(r.landed for r in land(con, config, TABLES))
        rows += landed
        if not landed:
            return rows, time.perf_counter() - started, passes


def baseline(con: duckdb.DuckDBPyConnection, folder: Path) -> tuple[int, float]:
    """Insert each bronze table's rows from Parquet into a same-shaped lake table: (rows, s)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS ece.baseline")
    rows, seconds = 0, 0.0
    for table in TABLES:
        path = folder / f"{table}.parquet"
        con.execute(f"COPY (SELECT * FROM ece.bronze.{table}) TO '{path}' (FORMAT parquet)")
        con.execute(f"CREATE TABLE ece.baseline.{table} AS "
                    f"SELECT * FROM ece.bronze.{table} LIMIT 0")
        con.execute(f"ALTER TABLE ece.baseline.{table} SET PARTITIONED BY (_day)")
        started = time.perf_counter()
        con.execute(f"INSERT INTO ece.baseline.{table} SELECT * FROM read_parquet('{path}')")
        seconds += time.perf_counter() - started
        count = con.execute(f"SELECT count(*) FROM ece.baseline.{table}").fetchone()
        rows += int(count[0]) if count else 0
    return rows, seconds


def check_landed(con: duckdb.DuckDBPyConnection, events: int) -> None:
    """Every event landed, none twice (the figure is only worth something if it is right)."""
    total = duplicates = 0
    for table in TABLES:
        row = con.execute(f"SELECT count(*), count(*) - count(DISTINCT (_partition, _offset)) "
                          f"FROM ece.bronze.{table}").fetchone()
        assert row is not None
        total, duplicates = total + int(row[0]), duplicates + int(row[1])
    if total != events or duplicates:
        raise SystemExit(f"landing is wrong: {total} rows for {events} events, "
                         f"{duplicates} duplicates")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--knobs", choices=sorted(LANDING_BY_ENV), default="dev",
                        help="landing batch size, cap per topic and poll wait of this env")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ece-p4a-") as tmp, \
            throwaway_platform("postgres", "broker"):
        settings = get_settings()
        seconds = produce(settings, args.events)
        print(f"{args.events:,} events produced to {len(TABLES)} topics x {PARTITIONS} "
              f"partitions in {seconds:.1f} s ({args.events / seconds:,.0f}/s)")
        knobs = LANDING_BY_ENV[args.knobs]
        config = LandingConfig(bootstrap=settings.kafka_bootstrap, prefix=settings.topic_prefix,
                               **knobs)
        con = connect(settings)
        rows, ours, passes = land_all(con, config)
        check_landed(con, args.events)
        print(f"landing ({args.knobs} knobs {knobs}): {rows:,} rows in {ours:.1f} s, "
              f"{passes} passes: {rows / ours:,.0f} events/s")
        base_rows, base = baseline(con, Path(tmp))
        con.close()
        print(f"baseline (DuckDB INSERT from Parquet into the same lake table shape): "
              f"{base_rows:,} rows in {base:.2f} s: {base_rows / base:,.0f} rows/s")
        ours_rate, base_rate = rows / ours, base_rows / base
        print(f"ratio baseline / landing: {base_rate / ours_rate:.1f}x "
              f"(landing at {100 * ours_rate / base_rate:.1f}% of the baseline's rate)")


if __name__ == "__main__":
    main()
