"""Checking one decoded ``ece.notifications`` value before anything touches the database.

Pure logic (no I/O), so the rules are unit-tested on their own. A value that fails
here goes to the DLQ instead of into the batch: one malformed record must never
make a whole batch fail and be replayed forever (a poison message).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from api.notifications.models import NOTIFICATION_KINDS

MAX_SOURCE_EVENT_ID = 200  # notifications.source_event_id is String(200)
_KINDS = frozenset(NOTIFICATION_KINDS)


class InvalidNotification(ValueError):
    """The value breaks the ``ece.notifications`` contract (the message says how)."""


@dataclass(frozen=True)
class Incoming:
    """A notification value that passed every check that needs no database."""

    id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    payload: dict[str, Any]
    source_event_id: str
    created_at: datetime

    @property
    def natural_key(self) -> tuple[uuid.UUID, str, str]:
        """What the database keeps unique: one notification per (recipient, event, rule)."""
        return (self.user_id, self.source_event_id, self.kind)


def _uuid(value: Any, field: str) -> uuid.UUID:
    if not isinstance(value, str):
        raise InvalidNotification(f"{field} must be a UUID string")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidNotification(f"{field} is not a UUID: {value!r}"[:200]) from None


def _created_at(value: Any) -> datetime:
    """The contract's ISO-8601 UTC time; absent means "now" (the row's own default)."""
    if value is None:
        return datetime.now(UTC)
    if not isinstance(value, str):
        raise InvalidNotification("created_at must be an ISO-8601 string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidNotification(f"created_at is not ISO-8601: {value!r}"[:200]) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse(value: Any) -> Incoming:
    """The checked notification, or :class:`InvalidNotification` saying what is wrong."""
    if not isinstance(value, dict):
        raise InvalidNotification("value is not a JSON object")
    kind = value.get("kind")
    if kind not in _KINDS:
        raise InvalidNotification(f"unknown kind {kind!r}"[:200])
    source = value.get("source_event_id")
    if not isinstance(source, str) or not source or len(source) > MAX_SOURCE_EVENT_ID:
        raise InvalidNotification(f"source_event_id must be 1..{MAX_SOURCE_EVENT_ID} characters")
    payload = value.get("payload", {})
    if not isinstance(payload, dict):
        raise InvalidNotification("payload must be a JSON object")
    # jsonb refuses NUL characters: such a payload would fail the whole INSERT.
    if "\\u0000" in json.dumps(payload):
        raise InvalidNotification("payload contains a NUL character")
    return Incoming(
        id=_uuid(value.get("id"), "id"),
        user_id=_uuid(value.get("user_id"), "user_id"),
        kind=kind,
        payload=payload,
        source_event_id=source,
        created_at=_created_at(value.get("created_at")),
    )


def first_of_each(items: Iterable[tuple[int, Incoming]]) -> tuple[
        list[tuple[int, Incoming]], list[tuple[int, str]]]:
    """Within one batch: the first value per natural key (repeats are replays, dropped)
    and the values whose ``id`` repeats under a *different* natural key (rejected: the
    id is derived from that key, so such a value is corrupt)."""
    kept: list[tuple[int, Incoming]] = []
    rejected: list[tuple[int, str]] = []
    keys: set[tuple[uuid.UUID, str, str]] = set()
    ids: set[uuid.UUID] = set()
    for index, item in items:
        if item.natural_key in keys:
            continue
        if item.id in ids:
            rejected.append((index, f"id {item.id} repeats with another natural key"))
            continue
        keys.add(item.natural_key)
        ids.add(item.id)
        kept.append((index, item))
    return kept, rejected


def number(items: list[Incoming], last_seq: dict[uuid.UUID, int]) -> list[int]:
    """The seq of each item, in input order per user, continuing from ``last_seq``
    (which is updated in place to each user's new last seq)."""
    seqs: list[int] = []
    for item in items:
        nxt = last_seq.get(item.user_id, 0) + 1
        last_seq[item.user_id] = nxt
        seqs.append(nxt)
    return seqs
