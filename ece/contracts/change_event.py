"""Decoding one Debezium change message: the envelope every CDC consumer reads.

Every consumer of ``<prefix>.public.<table>`` (the Flink pipelines, and any later
one) needs the same first step: a tombstone is no event, anything that is not a
JSON object with a known ``op`` and object-shaped ``before``/``after``/``source``
is malformed and belongs on the DLQ. One decoder keeps that rule the same for
all of them; each pipeline then reads the fields it cares about.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

OPS = ("c", "u", "r", "d")  # create, update, snapshot read, delete


class MalformedEvent(ValueError):
    """A message that is not a usable Debezium change (it goes to the DLQ)."""


P = ParamSpec("P")
R = TypeVar("R")
SHAPE_ERRORS = (KeyError, IndexError, TypeError, AttributeError, ValueError)


def malformed_on_shape_errors(parse: Callable[P, R]) -> Callable[P, R]:
    """Make a message parser raise only :class:`MalformedEvent` for a bad message.

    A parse step in a stream job sends MalformedEvent to the DLQ; any other exception
    fails the job, which restarts from its checkpoint and meets the same message again,
    forever. A message of an unexpected shape (a field that is a list, not an object; a
    missing key) is that message's fault, so it is reported, never a restart loop.
    """

    @functools.wraps(parse)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return parse(*args, **kwargs)
        except MalformedEvent:
            raise
        except SHAPE_ERRORS as exc:
            raise MalformedEvent(f"unexpected message shape: {type(exc).__name__}: {exc}"
                                 ) from exc

    return checked


@dataclass(frozen=True)
class Change:
    """One decoded change: ``after`` is set for c/u/r, ``before`` for d (and u/c
    with ``REPLICA IDENTITY FULL``)."""

    op: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    source: dict[str, Any]

    @property
    def table(self) -> str | None:
        table = self.source.get("table")
        return table if isinstance(table, str) else None


def _object(value: Any, what: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MalformedEvent(f"{what} is not an object")
    return value


def decode_change(raw: str | bytes | None) -> Change | None:
    """The change a message carries; None for a tombstone (empty value).

    Raises :class:`MalformedEvent` when the message is not JSON, not an object,
    names an unknown ``op``, or a create/update/read carries no ``after`` object.
    """
    if raw is None or raw in ("", b""):
        return None  # tombstone after a delete: compaction's business, no change
    try:
        event = json.loads(raw)
    except ValueError as exc:
        raise MalformedEvent(f"not JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise MalformedEvent("envelope is not a JSON object")
    op = event.get("op")
    if op not in OPS:
        raise MalformedEvent(f"unknown op {op!r}")
    after = _object(event.get("after"), "after")
    if op != "d" and after is None:
        raise MalformedEvent(f"op {op!r} without an 'after' object")
    return Change(op=op, before=_object(event.get("before"), "before"), after=after,
                  source=_object(event.get("source"), "source") or {})
