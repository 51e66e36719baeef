"""Notifications stored per second by the delivery path, against a plain insert loop.

Three figures on the same throwaway Postgres, same rows (``N`` notifications over
``USERS`` users, batches of ``BATCH``):

* ``baseline``: ``INSERT ... ON CONFLICT DO NOTHING`` of the precomputed rows (seq
  known in advance), executemany per batch, one transaction per batch: the writes
  alone, with none of the guarantees;
* ``store_batch``: :func:`api.notifications.store.store_batch` per batch (validate,
  user check, counter locks, dedupe against the table, numbering, counters);
* ``worker``: one in-process delivery worker consuming the same number of messages
  from the real broker end to end (store, DB commit, offset commit, doorbell),
  timed from its first stored row to its last (the group join is not counted).

Each run writes fresh notifications (new ids), so none is a no-op replay. Prints
the rates and the ratio store_batch / baseline.

    uv run python -m bench.bench_delivery [N]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any

import psycopg
from confluent_kafka import Producer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from api.notifications.store import store_batch
from bench.harness import throwaway_platform
from ece import kafka
from ece.contracts.realtime import event_id, iso_millis, notification_id
from ece.contracts.topics import notifications_topic
from ece.log import configure
from ece.settings import Settings

USERS = 200
BATCH = 500

_BASELINE = text(
    "INSERT INTO notifications (id, user_id, seq, kind, payload, source_event_id, created_at,"
    " pushed_at) VALUES (:id, :user_id, :seq, :kind, CAST(:payload AS jsonb), :source,"
    " :created_at, now()) ON CONFLICT DO NOTHING"
)


def make_users(settings: Settings) -> list[str]:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        return [str(conn.execute(
            "INSERT INTO users (email, username, password_hash) VALUES (%s, %s, 'x') RETURNING id",
            (f"b{i}-{uuid.uuid4().hex[:6]}@example.com", f"bench{i:04d}")).fetchone()[0])  # type: ignore[index]
            for i in range(USERS)]


def values(users: list[str], n: int) -> list[dict[str, Any]]:
    now = iso_millis(int(time.time() * 1000))
    out = []
    for i in range(n):
        source = event_id("sales", uuid.uuid4().hex, "sold")
        user = users[i % len(users)]
        out.append({"id": notification_id(source, "listing_sold", user), "user_id": user,
                    "kind": "listing_sold", "payload": {"title": f"Sold #{i}", "price_cents": i},
                    "source_event_id": source, "created_at": now})
    return out


async def bench_store(settings: Settings, batch_values: list[dict[str, Any]]) -> float:
    engine = create_async_engine(settings.sqlalchemy_url)
    try:
        started = time.perf_counter()
        for start in range(0, len(batch_values), BATCH):
            async with engine.begin() as conn:
                await store_batch(conn, batch_values[start:start + BATCH])
        return len(batch_values) / (time.perf_counter() - started)
    finally:
        await engine.dispose()


async def bench_baseline(settings: Settings, batch_values: list[dict[str, Any]]) -> float:
    engine = create_async_engine(settings.sqlalchemy_url)
    seq: dict[str, int] = {}
    rows = []
    for v in batch_values:
        seq[v["user_id"]] = seq.get(v["user_id"], 10**9) + 1  # never collides with real seqs
        rows.append({"id": v["id"], "user_id": v["user_id"], "seq": seq[v["user_id"]],
                     "kind": v["kind"], "payload": json.dumps(v["payload"]),
                     "source": v["source_event_id"], "created_at": v["created_at"]})
    try:
        started = time.perf_counter()
        for start in range(0, len(rows), BATCH):
            async with engine.begin() as conn:
                await conn.execute(_BASELINE, rows[start:start + BATCH])
        return len(rows) / (time.perf_counter() - started)
    finally:
        await engine.dispose()


def produce(settings: Settings, batch_values: list[dict[str, Any]]) -> None:
    topic = notifications_topic(settings.topic_prefix)
    kafka.ensure_topics(settings, [topic])
    producer = Producer(kafka.producer_config(settings))
    for v in batch_values:
        producer.produce(topic, key=v["user_id"].encode(), value=json.dumps(v).encode())
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("messages left undelivered")


def count(settings: Settings) -> int:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        return int(conn.execute("SELECT count(*) FROM notifications").fetchone()[0])  # type: ignore[index]


async def bench_worker(settings: Settings, batch_values: list[dict[str, Any]]) -> float:
    from api.workers.notification_delivery import NotificationDelivery

    produce(settings, batch_values)
    before = count(settings)
    goal = before + len(batch_values)
    worker = NotificationDelivery(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    first_at, first_count = 0.0, before
    try:
        while True:
            now_count = await asyncio.to_thread(count, settings)
            if now_count > before and not first_at:
                first_at, first_count = time.perf_counter(), now_count
            if now_count >= goal:
                return (goal - first_count) / (time.perf_counter() - first_at)
            if task.done():
                task.result()
                raise RuntimeError("the worker stopped")
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def measure(settings: Settings, n: int) -> None:
    users = make_users(settings)
    print(f"{n} notifications over {USERS} users, batches of {BATCH}")
    await bench_baseline(settings, values(users, BATCH * 2))  # warm up both paths
    await bench_store(settings, values(users, BATCH * 2))
    baseline = await bench_baseline(settings, values(users, n))
    stored = await bench_store(settings, values(users, n))
    print(f"  baseline INSERT ... ON CONFLICT DO NOTHING : {baseline:9,.0f} rows/s")
    print(f"  store_batch (locks, dedupe, seq, counters) : {stored:9,.0f} rows/s")
    print(f"  ratio store_batch / baseline               : {stored / baseline:9.2f}")
    worker = await bench_worker(settings, values(users, n))
    print(f"  delivery worker, broker end to end         : {worker:9,.0f} rows/s"
          f"  ({worker / baseline:.2f} of baseline)")
    from api.core.cache import close_redis
    from api.core.db import dispose_engine

    await close_redis()
    await dispose_engine()


def main() -> None:
    configure("WARNING")
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with throwaway_platform("postgres", "redis", "broker", "migrate") as platform:
        asyncio.run(measure(platform.settings, n))


if __name__ == "__main__":
    main()
