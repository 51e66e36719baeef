"""Bronze landing against the real broker and the real DuckLake catalog.

What must hold: each Kafka record lands once (re-runs land nothing twice), rows
and offsets commit together (a crash before COMMIT loses nothing and duplicates
nothing), concurrent landers never double land, and a new broker epoch starts at
offset 0 of its own log.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from typing import Any

import duckdb
import pytest
from cdcfeed import Feed, card_row

from ece.settings import Settings
from ops.stack.base import free_port
from ops.stack.broker import Broker, cluster_id
from warehouse.bronze import LandingConfig, land
from warehouse.lake import connect


def _counts(con: duckdb.DuckDBPyConnection, table: str = "cards") -> tuple[int, int]:
    row = con.execute(f"SELECT count(*), count(DISTINCT (_epoch, _partition, _offset)) "
                      f"FROM ece.bronze.{table}").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _publish_cards(feed: Feed, n_cards: int, versions: int) -> list[str]:
    feed.create_topic("cards")
    ids = [str(uuid.uuid4()) for _ in range(n_cards)]
    for v in range(1, versions + 1):
        for card_id in ids:
            feed.change("cards", "c" if v == 1 else "u", card_row(card_id, v))
    feed.flush()
    return ids


def test_lands_each_message_once(lake_settings: Settings, feed: Feed,
                                 landing: LandingConfig) -> None:
    ids = _publish_cards(feed, 40, 3)
    feed.change("cards", "d", card_row(ids[0], 4))  # + tombstone
    feed.flush()
    con = connect(lake_settings)
    reports = land(con, landing, ["cards", "users"])
    cards, users = reports
    assert users.skipped  # topic not created yet: skipped, not an error
    assert cards.landed == 121 and cards.tombstones == 1 and cards.batches >= 3
    assert _counts(con) == (121, 121)
    again = land(con, landing, ["cards"])[0]
    assert again.landed == 0
    assert _counts(con) == (121, 121)
    # progress = last offset + 1 per partition, tombstones included
    total_next = con.execute("SELECT sum(next_offset) FROM ece.bronze._offsets").fetchone()
    assert total_next == (122,)
    # flattened columns, text typed; metadata typed
    row = con.execute("SELECT id, rarity, version, op, lsn, _day FROM ece.bronze.cards "
                      "WHERE op = 'd'").fetchone()
    assert row is not None and row[0] == ids[0] and row[3] == "d" and row[4] > 1000
    assert str(row[5]) == "2026-01-01"


def test_crash_before_commit_loses_nothing_and_duplicates_nothing(
        lake_settings: Settings, feed: Feed, landing: LandingConfig) -> None:
    _publish_cards(feed, 50, 2)  # 100 messages, batches of 50
    con = connect(lake_settings)
    commits: list[int] = []

    def crash_on_second_batch(topic: str, rows: int) -> None:
        commits.append(rows)
        if len(commits) == 2:
            raise RuntimeError("simulated crash between fetch and commit")

    with pytest.raises(RuntimeError, match="simulated crash"):
        land(con, landing, ["cards"], before_commit=crash_on_second_batch)
    first, _ = _counts(con)
    assert first == commits[0]  # only the committed batch is there, with its offsets
    report = land(con, landing, ["cards"])[0]
    assert report.landed == 100 - first
    assert _counts(con) == (100, 100)


def test_concurrent_landers_never_land_twice(lake_settings: Settings, feed: Feed,
                                             landing: LandingConfig) -> None:
    _publish_cards(feed, 100, 3)  # 300 messages
    connect(lake_settings).close()  # create the schemas once
    errors: list[BaseException] = []
    landed: list[int] = []

    def run() -> None:
        try:
            con = connect(lake_settings)
            config = dataclasses.replace(landing, max_conflict_retries=50)
            landed.append(land(con, config, ["cards"])[0].landed)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert sum(landed) == 300
    assert _counts(connect(lake_settings)) == (300, 300)


def test_new_epoch_starts_at_offset_zero(lake_settings: Settings, feed: Feed,
                                         landing: LandingConfig) -> None:
    ids = _publish_cards(feed, 10, 1)
    con = connect(lake_settings)
    land(con, landing, ["cards"])
    # A restarted (memory) broker: a new cluster id, empty, offsets from 0 again.
    port = free_port()
    other = Broker(lake_settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{port}"}))
    other.start()
    try:
        feed2 = Feed(lake_settings, f"127.0.0.1:{port}", lsn=feed.lsn)
        feed2.create_topic("cards")
        for card_id in ids[:3]:
            feed2.change("cards", "u", card_row(card_id, 2))
        feed2.flush()
        config2 = dataclasses.replace(landing, bootstrap=f"127.0.0.1:{port}")
        report = land(con, config2, ["cards"])[0]
        epoch2 = cluster_id(f"127.0.0.1:{port}")
    finally:
        other.stop()
    assert report.epoch == epoch2 != cluster_id(lake_settings.kafka_bootstrap)
    assert report.landed == 3
    per_epoch: list[Any] = con.execute(
        "SELECT _epoch, count(*), min(_offset) FROM ece.bronze.cards GROUP BY ALL "
        "ORDER BY 2 DESC").fetchall()
    assert [(n, low) for _, n, low in per_epoch] == [(10, 0), (3, 0)]
    progress = dict(con.execute(
        "SELECT epoch, sum(next_offset) FROM ece.bronze._offsets GROUP BY ALL").fetchall())
    assert progress[epoch2] == 3


def _dead_letters(bootstrap: str, topic: str, expected: int) -> list[dict[str, Any]]:
    """Every letter on the DLQ topic, read from offset 0 (no group: the broker's
    high watermark is unreliable, so read until ``expected`` arrived or 15 s)."""
    import json
    import time

    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"dlq-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        letters: list[dict[str, Any]] = []
        deadline = time.monotonic() + 15
        while len(letters) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                letters.append({"_key": msg.key().decode(), **json.loads(msg.value())})
        return letters
    finally:
        consumer.close()


def test_invalid_messages_go_to_the_dlq_before_the_offsets_move(
        lake_settings: Settings, feed: Feed, landing: LandingConfig) -> None:
    from ece.contracts.topics import dlq_topic

    feed.create_topic("cards", 1)
    good = str(uuid.uuid4())
    feed.change("cards", "c", card_row(good, 1))
    topic = feed.topic("cards")
    feed.producer.produce(topic, key=b'{"id":"x"}', value=b"not json at all")
    feed.producer.produce(topic, key=b'{"id":"y"}', value=b'{"op":"x"}')  # JSON, not Debezium
    feed.change("cards", "u", card_row(good, 2))
    feed.flush()
    dlq = dlq_topic(lake_settings.topic_prefix)
    seen_at_commit: list[int] = []

    def before_commit(_topic: str, _rows: int) -> None:
        # the lake transaction is still open: the letters must already be on the DLQ
        seen_at_commit.append(len(_dead_letters(lake_settings.kafka_bootstrap, dlq, 2)))

    con = connect(lake_settings)
    report = land(con, landing, ["cards"], before_commit=before_commit)[0]
    assert report.landed == 2 and report.invalid == 2  # still counted
    assert seen_at_commit and seen_at_commit[0] == 2
    letters = _dead_letters(lake_settings.kafka_bootstrap, dlq, 2)
    assert len(letters) == 2
    by_offset = {letter["offset"]: letter for letter in letters}
    assert set(by_offset) == {1, 2}
    first = by_offset[1]
    assert first["_key"] == topic and first["source_topic"] == topic
    assert first["partition"] == 0 and first["key"] == '{"id":"x"}'
    assert first["value"] == "not json at all" and first["payload"] == "not json at all"
    assert first["reason"] == "invalid" and first["job"] == "bronze"
    assert first["error"] and first["at"].endswith("Z")
    assert by_offset[2]["value"] == '{"op":"x"}' and "op" in by_offset[2]["error"]
    # the offsets moved past them: a second run neither lands nor dead-letters again
    again = land(con, landing, ["cards"])[0]
    assert again.landed == 0 and again.invalid == 0
    assert len(_dead_letters(lake_settings.kafka_bootstrap, dlq, 3)) == 2
