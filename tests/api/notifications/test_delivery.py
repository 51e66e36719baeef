"""The delivery worker against the real broker, Postgres and Redis: every notification
is stored once, numbered 1..N per user without a gap, whatever is replayed, killed or
run twice; bad records go to the DLQ; the doorbell rings after the commit."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_lib
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy.ext.asyncio import create_async_engine

from api.notifications.store import store_batch
from api.workers.heartbeat import heartbeat_key
from ece import kafka
from ece.contracts.realtime import DOORBELL_CHANNEL
from ece.contracts.topics import dlq_topic, notifications_topic
from ece.settings import Settings
from tests.support.apitest import Db
from tests.support.notificationtest import (
    make_users,
    notification,
    produce,
    read_topic,
    seqs_by_user,
    stored_count,
    wait_for,
)
from tests.support.processes import TestProcess

KILLED = -signal.SIGKILL


@pytest.fixture(scope="module")
def broker_settings(platform: Any, api_settings: Settings) -> Settings:
    platform.require("broker")
    return api_settings


def expected(users: list[str], per_user: int) -> dict[str, list[int]]:
    return {u: list(range(1, per_user + 1)) for u in users}


# --- the stack part, default topics ---------------------------------------------------


@pytest.fixture(scope="module")
def delivery(platform: Any, broker_settings: Settings) -> Settings:
    platform.require("delivery")
    return broker_settings


async def test_part_stores_each_once_in_order_and_rings_the_doorbell(
    delivery: Settings, db: Db,
) -> None:
    users = make_users(db, 3)
    first = [notification(users[i % 3]) for i in range(30)]
    rung: list[dict[str, Any]] = []
    async with AsyncRedis.from_url(delivery.redis_url) as client, client.pubsub() as pubsub:
        await pubsub.subscribe(DOORBELL_CHANNEL)

        async def listen() -> None:
            async for message in pubsub.listen():
                if message["type"] == "message":
                    body = json.loads(message["data"])
                    if body["user_id"] in users:
                        rung.append(body)

        listening = asyncio.create_task(listen())
        try:
            topic = notifications_topic(delivery.topic_prefix)
            produce(delivery, topic, first)
            await wait_for(lambda: stored_count(db, users) == 30, 60, "30 stored")
            # The pipeline replays (re-snapshot, restart): the same values again, plus news.
            second = [notification(u) for u in users]
            produce(delivery, topic, [*first, *second])
            await wait_for(lambda: stored_count(db, users) == 33, 60, "33 stored")
            await wait_for(lambda: {b["user_id"]: b["seq"] for b in rung}
                           == dict.fromkeys(users, 11), 10, "the last doorbells")
        finally:
            listening.cancel()
    await asyncio.sleep(1.0)  # any late duplicate would land now
    assert seqs_by_user(db, users) == expected(users, 11)
    # seq follows production order per user (the topic is keyed by user).
    for user_id in users:
        sources = [n["source_event_id"] for n in [*first, *second] if n["user_id"] == user_id]
        stored = [r[0] for r in db.rows("SELECT source_event_id FROM notifications "
                                        "WHERE user_id = %s ORDER BY seq", user_id)]
        assert stored == sources
    assert db.rows("SELECT last_seq FROM notification_counters WHERE user_id = ANY(%s::uuid[])",
                   users) == [(11,)] * 3
    # Users without a push subscription have nothing to push: done at insert.
    assert db.value("SELECT count(*) FROM notifications WHERE user_id = ANY(%s::uuid[]) "
                    "AND pushed_at IS NULL", users) == 0
    # A doorbell never announces a seq that was not committed before it rang.
    assert all(1 <= b["seq"] <= 11 for b in rung)


async def test_bad_records_go_to_the_dlq_and_do_not_block_the_batch(
    delivery: Settings, db: Db,
) -> None:
    [user] = make_users(db, 1)
    marker = uuid.uuid4().hex
    ghost = str(uuid.uuid4())  # no such user: the foreign key would fail the whole batch
    bad_kind = {**notification(user), "kind": "new_listing", "source_event_id": f"k{marker}"}
    no_user = notification(ghost, source=f"u{marker}")
    no_source = {**notification(user), "source_event_id": None, "payload": {"m": marker}}
    not_json = f"{{not json {marker}".encode()
    good = [notification(user), notification(user)]
    produce(delivery, notifications_topic(delivery.topic_prefix),
            [good[0], bad_kind, no_user, not_json, no_source, good[1]])
    await wait_for(lambda: stored_count(db, [user]) == 2, 60, "the good ones stored")
    assert seqs_by_user(db, [user]) == {user: [1, 2]}

    def ours(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in records if r.get("pipeline") == "notification-delivery"
                and marker in (r.get("payload") or "")]

    dead = ours(read_topic(delivery, dlq_topic(delivery.topic_prefix),
                           lambda seen: len(ours(seen)) >= 4))
    reasons = sorted(r["error"].split(" ")[0] for r in dead)
    assert len(dead) == 4, dead
    assert reasons == sorted(["unknown", "user", "not", "source_event_id"]), reasons
    assert all(r["source_topic"] == notifications_topic(delivery.topic_prefix) for r in dead)
    assert db.value("SELECT count(*) FROM users WHERE id = %s", ghost) == 0


async def test_a_record_the_database_refuses_is_isolated_and_dead_lettered(
    delivery: Settings, db: Db,
) -> None:
    """Counter drift (a row numbered outside the counter) makes the INSERT itself fail:
    the batch is retried value by value, so only that user's record goes to the DLQ."""
    drifted, healthy = make_users(db, 2)
    marker = uuid.uuid4().hex
    db.value("INSERT INTO notifications (user_id, seq, kind, source_event_id, pushed_at) "
             "VALUES (%s, 1, 'listing_sold', %s, now()) RETURNING id", drifted, f"old{marker}")
    refused = notification(drifted, source=f"new{marker}")
    good = [notification(healthy), notification(healthy)]
    produce(delivery, notifications_topic(delivery.topic_prefix), [good[0], refused, good[1]])
    await wait_for(lambda: stored_count(db, [healthy]) == 2, 60, "the healthy user's two")

    def ours(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in records if f"new{marker}" in (r.get("payload") or "")]

    [dead] = ours(read_topic(delivery, dlq_topic(delivery.topic_prefix),
                             lambda seen: len(ours(seen)) >= 1))
    assert dead["error"].startswith("refused by the database"), dead
    assert seqs_by_user(db, [drifted, healthy]) == {drifted: [1], healthy: [1, 2]}


# --- store_batch raced by two connections -------------------------------------------


async def test_concurrent_batches_for_the_same_users_never_duplicate_or_gap(
    api_settings: Settings, db: Db,
) -> None:
    users = make_users(db, 6)
    values = [notification(users[i % 6]) for i in range(600)]
    engines = [create_async_engine(api_settings.sqlalchemy_url) for _ in range(2)]

    async def worker(engine: Any, order: list[dict[str, Any]]) -> int:
        stored = 0
        for start in range(0, len(order), 40):
            async with engine.begin() as conn:
                stored += len(await store_batch(conn, order[start:start + 40]))
        return stored

    try:
        # Both see every value (a rebalance replays), in opposite orders: each user's
        # counter row is contended on every batch, and lock order differs per batch.
        counts = await asyncio.gather(worker(engines[0], values),
                                      worker(engines[1], values[::-1]))
    finally:
        for engine in engines:
            await engine.dispose()
    assert sum(counts) == 600
    assert seqs_by_user(db, users) == expected(users, 100)
    assert db.value("SELECT count(DISTINCT (user_id, source_event_id, kind)) FROM notifications "
                    "WHERE user_id = ANY(%s::uuid[])", users) == 600


# --- real worker processes on their own topics ------------------------------------------


@pytest.fixture
def own_topics(broker_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A topic prefix of this test only, with a 2-partition notifications topic: the
    processes started below consume nothing of other tests and form their own group."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("ECE_TOPIC_PREFIX", prefix)
    settings = broker_settings.model_copy(update={"topic_prefix": prefix})
    kafka.ensure_topics(settings, [notifications_topic(prefix)], partitions=2)
    return settings


def start_worker(settings: Settings, label: str, crash_at: str | None = None) -> TestProcess:
    return TestProcess(settings, "api.workers", "--only", "notifications", label=label,
                       crash_at=crash_at)


async def ready(settings: Settings, process: TestProcess) -> None:
    def up() -> bool:
        assert process.proc.poll() is None, process.log()
        with redis_lib.Redis.from_url(settings.redis_url) as client:
            return bool(client.exists(heartbeat_key(process.proc.pid)))

    await wait_for(up, 60, f"{process.label} heartbeat")


@pytest.fixture
def processes() -> Iterator[list[TestProcess]]:
    started: list[TestProcess] = []
    yield started
    for process in started:
        process.stop()


def trickle(settings: Settings, values: list[dict[str, Any]], chunk: int = 10,
            pause: float = 0.02) -> threading.Thread:
    """Produce ``values`` in small chunks from a thread: a stream, not one big batch."""
    topic = notifications_topic(settings.topic_prefix)

    def run() -> None:
        for start in range(0, len(values), chunk):
            produce(settings, topic, values[start:start + chunk])
            time.sleep(pause)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


async def test_two_processes_split_the_partitions_and_agree(
    own_topics: Settings, db: Db, processes: list[TestProcess],
) -> None:
    processes += [start_worker(own_topics, "delivery-a"), start_worker(own_topics, "delivery-b")]
    for process in processes:
        await ready(own_topics, process)
    users = make_users(db, 10)

    def assigned() -> bool:  # each process owns one of the two partitions (its last assignment)
        lines = [[line for line in p.log_path.read_text(errors="replace").splitlines()
                  if "delivery_assigned" in line]
                 for p in processes]
        return all(found and "notifications[" in found[-1] for found in lines)

    await wait_for(assigned, 40, "a partition each")
    values = [notification(users[i % 10]) for i in range(300)]
    trickle(own_topics, values).join(60)
    await wait_for(lambda: stored_count(db, users) == 300, 60, "300 stored")
    await asyncio.sleep(1.0)
    assert seqs_by_user(db, users) == expected(users, 30)


async def test_kill_9_mid_stream_then_restart_stores_everything_once(
    own_topics: Settings, db: Db, processes: list[TestProcess],
) -> None:
    users = make_users(db, 20)
    values = [notification(users[i % 20]) for i in range(500)]
    first = start_worker(own_topics, "delivery-killed")
    processes.append(first)
    await ready(own_topics, first)
    producing = trickle(own_topics, values)
    await wait_for(lambda: stored_count(db, users) >= 100, 60, "100 stored")
    first.kill()
    killed_at = stored_count(db, users)
    assert killed_at < 500, "the stream finished before the kill: nothing was tested"
    second = start_worker(own_topics, "delivery-restarted")
    processes.append(second)
    producing.join(60)
    await wait_for(lambda: stored_count(db, users) == 500, 90, "all 500 stored")
    await asyncio.sleep(1.0)
    assert seqs_by_user(db, users) == expected(users, 25)
    stored = {r[0] for r in db.rows("SELECT id::text FROM notifications "
                                    "WHERE user_id = ANY(%s::uuid[])", users)}
    assert stored == {v["id"] for v in values}


async def test_killed_after_commit_before_offsets_replays_without_duplicates(
    own_topics: Settings, db: Db, processes: list[TestProcess],
) -> None:
    users = make_users(db, 4)
    values = [notification(users[i % 4]) for i in range(40)]
    crashing = start_worker(own_topics, "delivery-crash", crash_at="delivery_after_store:1")
    processes.append(crashing)
    await ready(own_topics, crashing)
    produce(own_topics, notifications_topic(own_topics.topic_prefix), values)
    assert await crashing.wait_exit(60) == KILLED, crashing.log()
    committed = stored_count(db, users)
    assert committed > 0  # the batch was committed, its offsets were not
    again = start_worker(own_topics, "delivery-again")
    processes.append(again)
    await wait_for(lambda: stored_count(db, users) == 40, 60, "all 40 stored")
    await asyncio.sleep(1.0)
    assert seqs_by_user(db, users) == expected(users, 10)
