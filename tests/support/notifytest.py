"""Producing notifications the way the delivery worker stores them, for API tests.

:func:`store_notification` is one transaction that bumps the user's
``notification_counters`` row and inserts the row with that seq (what the worker
does per batch); :func:`ring` is its doorbell. ``pushed_at`` is set, so a running
push sender leaves these alone. :func:`produce` is the one call tests use to make
"a notification happens": swap its body for a real sale through the whole pipeline
(CDC -> Flink -> delivery) and the tests keep working.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import redis
from psycopg.types.json import Jsonb

from ece.contracts.realtime import DOORBELL_CHANNEL, notification_id
from ece.settings import Settings


@dataclass(frozen=True)
class Stored:
    id: str
    seq: int
    kind: str
    payload: dict[str, Any]


def store_notification(
    database_url: str,
    user_id: str,
    *,
    kind: str = "listing_sold",
    payload: dict[str, Any] | None = None,
    source_event_id: str | None = None,
) -> Stored:
    source = source_event_id or uuid.uuid4().hex
    body = payload if payload is not None else {"title": f"{kind.replace('_', ' ')} {source[:6]}"}
    nid = notification_id(source, kind, user_id)
    with psycopg.connect(database_url) as conn, conn.transaction():
        (seq,) = conn.execute(
            "INSERT INTO notification_counters (user_id, last_seq) VALUES (%s, 1)"
            " ON CONFLICT (user_id) DO UPDATE"
            " SET last_seq = notification_counters.last_seq + 1 RETURNING last_seq",
            (user_id,),
        ).fetchone() or (None,)
        conn.execute(
            "INSERT INTO notifications (id, user_id, seq, kind, payload, source_event_id,"
            " pushed_at) VALUES (%s, %s, %s, %s, %s, %s, now())",
            (nid, user_id, seq, kind, Jsonb(body), source),
        )
    return Stored(nid, int(seq), kind, body)


def store_batch(database_url: str, user_id: str, payloads: list[dict[str, Any]],
                kind: str = "listing_sold") -> list[Stored]:
    """Many notifications in one transaction, as the worker stores a batch."""
    with psycopg.connect(database_url) as conn, conn.transaction():
        (last,) = conn.execute(
            "INSERT INTO notification_counters (user_id, last_seq) VALUES (%s, %s)"
            " ON CONFLICT (user_id) DO UPDATE"
            " SET last_seq = notification_counters.last_seq + %s RETURNING last_seq",
            (user_id, len(payloads), len(payloads)),
        ).fetchone() or (None,)
        first = int(last) - len(payloads) + 1
        rows = []
        for offset, payload in enumerate(payloads):
            source = uuid.uuid4().hex
            rows.append(Stored(notification_id(source, kind, user_id), first + offset, kind,
                               payload))
            conn.execute(
                "INSERT INTO notifications (id, user_id, seq, kind, payload, source_event_id,"
                " pushed_at) VALUES (%s, %s, %s, %s, %s, %s, now())",
                (rows[-1].id, user_id, rows[-1].seq, kind, Jsonb(payload), source),
            )
    return rows


def ring(redis_url: str, user_id: str, seq: int) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        client.publish(DOORBELL_CHANNEL, json.dumps({"user_id": user_id, "seq": seq}))
    finally:
        client.close()


def produce(settings: Settings, user_id: str, *, doorbell: bool = True, **kwargs: Any) -> Stored:
    """One notification for ``user_id``, stored and (unless ``doorbell=False``) rung."""
    stored = store_notification(settings.database_url, user_id, **kwargs)
    if doorbell:
        ring(settings.redis_url, user_id, stored.seq)
    return stored
