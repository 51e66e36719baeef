"""Helpers for the notification delivery tests: users, notification values, the broker.

Values are built exactly as the stream job builds them (``ece.contracts.realtime``
ids, ``iso_millis`` times) and produced to the real broker keyed by user id.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from confluent_kafka import Consumer, Producer

from ece import kafka
from ece.contracts.realtime import event_id, iso_millis, notification_id
from ece.settings import Settings
from tests.support.apitest import Db, unique


def make_users(db: Db, count: int) -> list[str]:
    """``count`` users inserted directly (delivery needs rows, not logins)."""
    ids = []
    for _ in range(count):
        name = unique("n")
        ids.append(str(db.value(
            "INSERT INTO users (email, username, password_hash) VALUES (%s, %s, 'x') "
            "RETURNING id", f"{name}@example.com", name)))
    return ids


def notification(user_id: str, kind: str = "listing_sold", *, source: str | None = None,
                 **payload: Any) -> dict[str, Any]:
    """One ``ece.notifications`` value (a fresh source event unless ``source`` is given)."""
    source = source or event_id("sales", uuid.uuid4().hex, "sold")
    return {
        "id": notification_id(source, kind, user_id),
        "user_id": user_id,
        "kind": kind,
        "payload": {"title": f"{kind} {source[:6]}", **payload},
        "source_event_id": source,
        "created_at": iso_millis(int(time.time() * 1000)),
    }


def produce(settings: Settings, topic: str, values: Iterable[dict[str, Any] | bytes]) -> int:
    """Produce each value (dicts as JSON, keyed by user id; bytes as they are); flushed."""
    producer = Producer(kafka.producer_config(settings, linger_ms=2))
    count = 0
    for value in values:
        if isinstance(value, bytes):
            producer.produce(topic, key=b"raw", value=value)
        else:
            producer.produce(topic, key=str(value.get("user_id")).encode(),
                             value=json.dumps(value).encode())
        count += 1
        producer.poll(0)
    left = producer.flush(30)
    assert left == 0, f"{left} messages not delivered to {topic}"
    return count


def read_topic(settings: Settings, topic: str, until: Callable[[list[dict[str, Any]]], bool],
               timeout: float = 60.0) -> list[dict[str, Any]]:
    """JSON values of ``topic`` from the beginning (a fresh group) until ``until`` holds."""
    consumer = Consumer(kafka.consumer_config(settings, f"test-{uuid.uuid4().hex[:8]}",
                                              auto_commit=False))
    consumer.subscribe([topic])
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(seen):
            message = consumer.poll(0.5)
            if message is None or message.error() is not None or message.value() is None:
                continue
            seen.append(json.loads(message.value()))
    finally:
        consumer.close()
    return seen


def seqs_by_user(db: Db, users: list[str]) -> dict[str, list[int]]:
    """Each user's stored seqs in order."""
    result: dict[str, list[int]] = {u: [] for u in users}
    for user_id, seq in db.rows("SELECT user_id::text, seq FROM notifications "
                                "WHERE user_id = ANY(%s::uuid[]) ORDER BY user_id, seq", users):
        result[user_id].append(seq)
    return result


def stored_count(db: Db, users: list[str]) -> int:
    return int(db.value("SELECT count(*) FROM notifications WHERE user_id = ANY(%s::uuid[])",
                        users))


async def wait_for(check: Callable[[], Any] | Callable[[], Awaitable[Any]], timeout: float,  # noqa: ASYNC109
                   what: str, interval: float = 0.2) -> Any:
    """Poll ``check`` (sync or async) until truthy; its value, or AssertionError."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
