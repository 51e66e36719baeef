"""The Flink card-cache pipeline against a real broker, Redis and MiniCluster.

Messages are produced exactly as the CDC runner writes them (Debezium envelope,
schemas disabled, key ``{"id": ...}``), so these tests pin the contract between
CDC, Flink and the API's cache reader. Everything goes to partition 0 so that a
later "sentinel" message proves every earlier one was consumed.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from ece.contracts.card_cache import card_document, decode_entry, document_key, floor_key
from ece.contracts.topics import DLQ, cdc_topic
from ops.stack.broker import cluster_id
from ops.stack.supervisor import Platform
from streaming.jobs.card_cache import MalformedEvent, _bucket, parse_change
from streaming.jobs.minicluster import tmp_dir

TOPIC = cdc_topic("cards")
WAIT_S = 60.0


# --- pure parsing (no cluster) ---------------------------------------------


def _after(card_id: str, version: int, **overrides: Any) -> dict[str, Any]:
    """A cards row as Debezium renders it: uuid text, ISO timestamps, jsonb as JSON text."""
    row = {
        "id": card_id,
        "name": "Charizard",
        "set_name": "Base Set",
        "number": "4/102",
        "rarity": "holo",
        "edition": "1st",
        "attributes": json.dumps({"grade": 10, "grader": "PSA"}),
        "owner_id": "6f1c3c55-0d6e-4c52-9d1e-6f4f1a0c0001",
        "status": "active",
        "image_object_key": f"cards/{card_id}.png",
        "created_at": "2024-03-01T10:00:00.123456Z",
        "updated_at": f"2024-03-{version % 28 + 1:02d}T10:00:00Z",
        "version": version,
    }
    row.update(overrides)
    return row


def _envelope(op: str, after: dict[str, Any] | None, before: dict[str, Any] | None = None) -> str:
    return json.dumps({
        "before": before,
        "after": after,
        "source": {"lsn": 1000 + int(time.time() * 1000) % 100000, "txId": 7, "ts_ms": 1,
                   "table": "cards", "schema": "public", "db": "ece"},
        "op": op,
        "ts_ms": int(time.time() * 1000),
    })


def test_parse_change_upsert_uses_the_contract_document() -> None:
    card_id = str(uuid.uuid4())
    write = parse_change(_envelope("u", _after(card_id, 4)), 60)
    assert write is not None
    assert write.doc_key == document_key(card_id) and write.floor_key == floor_key(card_id)
    assert write.entry is not None
    assert decode_entry(write.entry) == (card_document(_after(card_id, 4)), 4)


def test_parse_change_tombstone_is_ignored_and_delete_keeps_version() -> None:
    card_id = str(uuid.uuid4())
    assert parse_change(None, 60) is None
    write = parse_change(_envelope("d", None, _after(card_id, 9)), 60)
    assert write is not None and write.entry is None and write.version == 9
    # default replica identity: before holds only the key -> version unknown
    write = parse_change(_envelope("d", None, {"id": card_id}), 60)
    assert write is not None and write.version == -1


@pytest.mark.parametrize("raw", [
    "not json",
    "[1, 2]",
    json.dumps({"op": "x", "after": {}}),
    _envelope("c", None),
    _envelope("u", {**_after(str(uuid.uuid4()), 1), "version": None}),
    _envelope("u", {k: v for k, v in _after(str(uuid.uuid4()), 1).items() if k != "name"}),
    _envelope("d", None, None),
])
def test_parse_change_rejects_malformed(raw: str) -> None:
    with pytest.raises(MalformedEvent):
        parse_change(raw, 60)


# --- against the running job -------------------------------------------------


@pytest.fixture(scope="module")
def flink(platform: Platform) -> Iterator[Platform]:
    # chain_reconciliation (in the same job) reads Postgres on owner changes
    platform.require("broker", "redis", "postgres", "migrate", "flink")
    yield platform


@pytest.fixture(scope="module")
def producer(flink: Platform) -> Iterator[Producer]:
    prod = Producer({"bootstrap.servers": flink.settings.kafka_bootstrap,
                     "enable.idempotence": True, "linger.ms": 0})
    yield prod
    prod.flush(10)


@pytest.fixture(scope="module")
def cache(flink: Platform) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(flink.settings.redis_url, decode_responses=True)
    yield client
    client.close()


def _send(producer: Producer, card_id: str, value: str | None) -> int:
    """Produce to partition 0 (total order across cards) and return the offset."""
    offsets: list[int] = []

    def delivered(err: Any, msg: Any) -> None:
        assert err is None, err
        offsets.append(msg.offset())

    producer.produce(TOPIC, key=json.dumps({"id": card_id}), value=value, partition=0,
                     on_delivery=delivered)
    producer.flush(10)
    assert offsets, "not delivered"
    return offsets[0]


def _wait(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _cached(cache: redis.Redis, card_id: str) -> tuple[dict[str, Any], int] | None:
    raw = cache.get(document_key(card_id))
    return decode_entry(raw) if raw is not None else None


def _same_bucket_id(card_id: str) -> str:
    """A card id buffered in the same bucket as ``card_id`` (so it is flushed after it)."""
    while True:
        other = str(uuid.uuid4())
        if _bucket(other) == _bucket(card_id):
            return other


def _sentinel(producer: Producer, cache: redis.Redis, card_id: str) -> None:
    """Produce a later change for a sibling card and wait for it: all before it is applied."""
    sibling = _same_bucket_id(card_id)
    _send(producer, sibling, _envelope("c", _after(sibling, 1)))
    _wait(lambda: _cached(cache, sibling) is not None, "the sentinel card")


def test_change_is_cached_as_the_contract_document(producer: Producer,
                                                   cache: redis.Redis) -> None:
    card_id = str(uuid.uuid4())
    _send(producer, card_id, _envelope("c", _after(card_id, 1)))
    _wait(lambda: _cached(cache, card_id) is not None, "the created card")
    assert _cached(cache, card_id) == (card_document(_after(card_id, 1)), 1)

    changed = _after(card_id, 2, status="listed", attributes=json.dumps({"grade": 9}))
    _send(producer, card_id, _envelope("u", changed, _after(card_id, 1)))
    _wait(lambda: (_cached(cache, card_id) or ({}, 0))[1] == 2, "the update")
    assert _cached(cache, card_id) == (card_document(changed), 2)
    assert cache.ttl(document_key(card_id)) > 0
    assert cache.ttl(floor_key(card_id)) == -1  # the floor never expires


def test_older_version_never_overwrites_newer(producer: Producer, cache: redis.Redis) -> None:
    card_id = str(uuid.uuid4())
    _send(producer, card_id, _envelope("u", _after(card_id, 5, name="Newest")))
    _send(producer, card_id, _envelope("u", _after(card_id, 3, name="Replayed")))
    _send(producer, card_id, _envelope("r", _after(card_id, 4, name="Snapshot")))
    _sentinel(producer, cache, card_id)
    assert _cached(cache, card_id) == (card_document(_after(card_id, 5, name="Newest")), 5)
    assert cache.get(floor_key(card_id)) == "5"


def test_delete_removes_document_keeps_floor_ignores_tombstone(producer: Producer,
                                                               cache: redis.Redis) -> None:
    card_id = str(uuid.uuid4())
    _send(producer, card_id, _envelope("c", _after(card_id, 2)))
    _send(producer, card_id, _envelope("d", None, _after(card_id, 2)))
    _send(producer, card_id, None)  # the tombstone that follows a delete
    _send(producer, card_id, _envelope("u", _after(card_id, 2)))  # replay of the last update
    _sentinel(producer, cache, card_id)
    assert _cached(cache, card_id) is None
    assert int(cache.get(floor_key(card_id)) or 0) >= 2


def test_malformed_messages_go_to_the_dlq(flink: Platform, producer: Producer,
                                          cache: redis.Redis) -> None:
    marker = uuid.uuid4().hex
    bad_json = f"{{not json {marker}"
    no_version = _envelope("u", {**_after(str(uuid.uuid4()), 1, name=marker), "version": None})
    _send(producer, "bad-1", bad_json)
    _send(producer, "bad-2", no_version)

    consumer = Consumer({"bootstrap.servers": flink.settings.kafka_bootstrap,
                         "group.id": f"test-dlq-{marker}", "enable.auto.commit": False})
    meta = consumer.list_topics(DLQ, timeout=10)
    consumer.assign([TopicPartition(DLQ, p, 0) for p in meta.topics[DLQ].partitions])
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + WAIT_S
    try:
        while len(found) < 2 and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error() or msg.value() is None:
                continue
            record = json.loads(msg.value())
            if marker in (record.get("payload") or ""):
                assert msg.key() == TOPIC.encode()
                found[record["payload"]] = record
    finally:
        consumer.close()
    assert set(found) == {bad_json, no_version}
    assert all(r["pipeline"] == "card_cache" and r["error"] for r in found.values())
    assert "version" in found[no_version]["error"]


def _committed(flink: Platform) -> int:
    group = f"ece-flink-card_cache-{cluster_id(flink.settings.kafka_bootstrap)}"
    admin = AdminClient({"bootstrap.servers": flink.settings.kafka_bootstrap})
    futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    for tp in next(iter(futures.values())).result(10).topic_partitions:
        if tp.topic == TOPIC and tp.partition == 0:
            return int(tp.offset)
    return -1


def test_restart_resumes_where_it_left_off(flink: Platform, producer: Producer,
                                           cache: redis.Redis) -> None:
    kept, moved = str(uuid.uuid4()), str(uuid.uuid4())
    for version in (1, 2, 3):
        last = _send(producer, kept, _envelope("u", _after(kept, version)))
    _send(producer, moved, _envelope("c", _after(moved, 1)))
    _sentinel(producer, cache, moved)
    _wait(lambda: _committed(flink) > last, "offsets committed by a checkpoint")

    part = flink.part("flink")
    assert part.process is not None and part.process.proc is not None
    group = part.process.proc.pid
    part.stop()
    with pytest.raises(ProcessLookupError):  # python and its JVM are gone, nothing orphaned
        os.killpg(group, 0)
    assert not tmp_dir(flink.settings).exists()
    # while the job is down: a new change, and a replay of an old one
    _send(producer, moved, _envelope("u", _after(moved, 7, status="sold")))
    _send(producer, kept, _envelope("u", _after(kept, 1)))
    part.start()

    _wait(lambda: (_cached(cache, moved) or ({}, 0))[1] == 7, "the change made while down")
    assert _cached(cache, moved) == (card_document(_after(moved, 7, status="sold")), 7)
    _sentinel(producer, cache, kept)
    assert _cached(cache, kept) == (card_document(_after(kept, 3)), 3)
    ok, detail = part.health()
    assert ok, detail
