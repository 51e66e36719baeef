"""Storing a batch of notifications exactly once, numbered gap-free per user.

The pipeline delivers at least once (replays, re-snapshots, two workers after a
rebalance), so the batch is deduplicated against the natural key
``(user_id, source_event_id, kind)`` *after* the recipients' counter rows are
locked: whoever else stores for the same user has committed by then, so the
check sees their rows and no seq is taken twice or skipped. Locks are per user
and taken in user-id order, so two workers never deadlock and never wait for
each other on different users (docs/realtime.md, "Delivery").

Everything runs in the caller's transaction, with set-based statements (a fixed
number of round trips per batch, whatever its size); the caller commits.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from api.notifications.incoming import (
    Incoming,
    InvalidNotification,
    first_of_each,
    number,
    parse,
)

Executor = AsyncConnection | AsyncSession
OnReject = Callable[[int, str], None]  # (index in the input, reason)


@dataclass(frozen=True)
class StoredNotification:
    """A row this batch inserted; ``push`` says whether the user had a push subscription
    at insert time (if not, ``pushed_at`` was set at once: nothing to push)."""

    id: uuid.UUID
    user_id: uuid.UUID
    seq: int
    kind: str
    payload: dict[str, Any]
    created_at: datetime
    push: bool


_ENSURE_COUNTERS = text(
    "INSERT INTO notification_counters (user_id)"
    " SELECT u FROM unnest(CAST(:users AS uuid[])) AS u ORDER BY u"
    " ON CONFLICT DO NOTHING"
)
# FOR KEY SHARE: the user cannot be deleted before we commit (the FK would fail).
_EXISTING_USERS = text(
    "SELECT id FROM users WHERE id = ANY(CAST(:users AS uuid[])) ORDER BY id FOR KEY SHARE"
)
_LOCK_COUNTERS = text(
    "SELECT user_id, last_seq FROM notification_counters"
    " WHERE user_id = ANY(CAST(:users AS uuid[])) ORDER BY user_id FOR UPDATE"
)
_ALREADY_STORED = text(
    "SELECT n.id, n.user_id, n.source_event_id, n.kind FROM notifications n"
    " WHERE n.id = ANY(CAST(:ids AS uuid[]))"
    " UNION "
    "SELECT n.id, n.user_id, n.source_event_id, n.kind FROM notifications n"
    " JOIN unnest(CAST(:users AS uuid[]), CAST(:sources AS text[]), CAST(:kinds AS text[]))"
    "   AS k(user_id, source_event_id, kind)"
    " ON n.user_id = k.user_id AND n.source_event_id = k.source_event_id AND n.kind = k.kind"
)
_SUBSCRIBED = text(
    "SELECT DISTINCT user_id FROM push_subscriptions WHERE user_id = ANY(CAST(:users AS uuid[]))"
)
_INSERT = text(
    "INSERT INTO notifications"
    " (id, user_id, seq, kind, payload, source_event_id, created_at, pushed_at)"
    " SELECT r.id, r.user_id, r.seq, r.kind, r.payload, r.source_event_id, r.created_at,"
    "        CASE WHEN r.push THEN NULL ELSE now() END"
    " FROM unnest(CAST(:ids AS uuid[]), CAST(:users AS uuid[]), CAST(:seqs AS bigint[]),"
    "             CAST(:kinds AS text[]), CAST(:payloads AS jsonb[]), CAST(:sources AS text[]),"
    "             CAST(:created AS timestamptz[]), CAST(:push AS boolean[]))"
    "   AS r(id, user_id, seq, kind, payload, source_event_id, created_at, push)"
)
_UPDATE_COUNTERS = text(
    "UPDATE notification_counters c SET last_seq = v.last_seq"
    " FROM unnest(CAST(:users AS uuid[]), CAST(:seqs AS bigint[])) AS v(user_id, last_seq)"
    " WHERE c.user_id = v.user_id"
)


def _validated(values: Sequence[Any], reject: OnReject) -> list[tuple[int, Incoming]]:
    checked: list[tuple[int, Incoming]] = []
    for index, value in enumerate(values):
        try:
            checked.append((index, parse(value)))
        except InvalidNotification as exc:
            reject(index, str(exc))
    kept, repeated = first_of_each(checked)
    for index, reason in repeated:
        reject(index, reason)
    return kept


async def _new_only(db: Executor, items: list[tuple[int, Incoming]],
                    reject: OnReject) -> list[Incoming]:
    """Drop what is stored already (same natural key); reject an id that exists under
    another key rather than let its INSERT fail the batch."""
    rows = (await db.execute(_ALREADY_STORED, {
        "ids": [i.id for _, i in items],
        "users": [i.user_id for _, i in items],
        "sources": [i.source_event_id for _, i in items],
        "kinds": [i.kind for _, i in items],
    })).all()
    stored_keys = {(r.user_id, r.source_event_id, r.kind) for r in rows}
    stored_ids = {r.id for r in rows}
    fresh: list[Incoming] = []
    for index, item in items:
        if item.natural_key in stored_keys:
            continue
        if item.id in stored_ids:
            reject(index, f"id {item.id} is stored already under another natural key")
            continue
        fresh.append(item)
    return fresh


async def store_batch(db: Executor, notifications: Sequence[Any], *,
                      on_reject: OnReject | None = None) -> list[StoredNotification]:
    """Store decoded ``ece.notifications`` values once each; the rows inserted now.

    ``on_reject(index, reason)`` hears about every value that cannot be stored (bad
    shape, unknown kind, unknown user): the caller dead-letters those. Replays of
    stored values are dropped silently. Runs in ``db``'s transaction: commit after.
    """
    rejected: list[tuple[int, str]] = []
    reject = on_reject or (lambda index, reason: rejected.append((index, reason)))
    items = _validated(notifications, reject)
    if not items:
        return []
    wanted = sorted({i.user_id for _, i in items})
    known = {r.id for r in (await db.execute(_EXISTING_USERS, {"users": wanted})).all()}
    for index, item in items:
        if item.user_id not in known:
            reject(index, f"user {item.user_id} does not exist")
    items = [(index, item) for index, item in items if item.user_id in known]
    if not items:
        return []
    users = sorted(known)
    await db.execute(_ENSURE_COUNTERS, {"users": users})
    last_seq = {r.user_id: int(r.last_seq)
                for r in (await db.execute(_LOCK_COUNTERS, {"users": users})).all()}
    fresh = await _new_only(db, items, reject)
    if not fresh:
        return []
    seqs = number(fresh, last_seq)
    touched = sorted({i.user_id for i in fresh})
    subscribed = {r.user_id for r in (await db.execute(_SUBSCRIBED, {"users": touched})).all()}
    push = [i.user_id in subscribed for i in fresh]
    await db.execute(_INSERT, {
        "ids": [i.id for i in fresh],
        "users": [i.user_id for i in fresh],
        "seqs": seqs,
        "kinds": [i.kind for i in fresh],
        "payloads": [json.dumps(i.payload, separators=(",", ":")) for i in fresh],
        "sources": [i.source_event_id for i in fresh],
        "created": [i.created_at for i in fresh],
        "push": push,
    })
    await db.execute(_UPDATE_COUNTERS, {"users": touched,
                                        "seqs": [last_seq[u] for u in touched]})
    return [
        StoredNotification(i.id, i.user_id, seq, i.kind, i.payload, i.created_at, p)
        for i, seq, p in zip(fresh, seqs, push, strict=True)
    ]


def last_seq_per_user(stored: Sequence[StoredNotification]) -> dict[uuid.UUID, int]:
    """The highest seq stored per user: what the doorbell announces once per batch."""
    latest: dict[uuid.UUID, int] = {}
    for row in stored:
        latest[row.user_id] = max(row.seq, latest.get(row.user_id, 0))
    return latest
