"""Checked CDC rows for the real-time pipelines (``market_activity``, ``notifications``).

Both pipelines read the same nine tables and apply rules to a handful of columns
each. This module is the one place that says which columns a rule may rely on and
what type they have: :func:`parse` either returns a :class:`Parsed` whose fields
the rules can use without further checks, or raises :class:`MalformedEvent` (the
message goes to the DLQ). Pure Python, no pyflink import, so ``tests/unit`` can
exercise every rule without a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ece.contracts.change_event import MalformedEvent, decode_change, malformed_on_shape_errors

STR, OPT_STR, INT, OPT_INT, TS = "str", "str?", "int", "int?", "ts"

# The columns each table's rules read, and their JSON type; checked on every image used.
COLUMNS: dict[str, dict[str, str]] = {
    "cards": {"id": STR, "name": STR, "set_name": OPT_STR, "rarity": OPT_STR,
              "owner_id": OPT_STR},
    "listings": {"id": STR, "card_id": STR, "seller_id": STR, "price_cents": INT,
                 "status": STR},
    "sales": {"id": STR, "listing_id": STR, "card_id": STR, "buyer_id": STR,
              "seller_id": STR, "price_cents": INT},
    "auctions": {"id": STR, "card_id": STR, "seller_id": STR, "start_price_cents": INT,
                 "current_bid_cents": OPT_INT, "current_bidder_id": OPT_STR,
                 "bid_count": INT, "ends_at": TS, "status": STR, "result": OPT_STR},
    "card_history": {"id": STR, "card_id": STR, "from_user_id": OPT_STR, "to_user_id": STR,
                     "reason": STR, "reference_id": OPT_STR},
    "nfts": {"id": STR, "card_id": STR, "status": STR},
    "trade_offers": {"id": STR, "from_user_id": STR, "to_user_id": STR, "status": STR},
    "watchlists": {"user_id": STR, "card_id": STR, "created_at": TS},
    "price_alerts": {"id": STR, "user_id": STR, "max_price_cents": INT, "card_id": OPT_STR,
                     "set_name": OPT_STR, "rarity": OPT_STR, "created_at": TS},
}

# Updates whose rules compare before and after (REPLICA IDENTITY FULL gives both).
NEEDS_BEFORE = {"listings", "auctions", "nfts", "trade_offers"}

# Which column a table's messages are keyed by in the jobs (one card, one order).
KEY_COLUMN: dict[str, str] = {
    "cards": "id", "listings": "card_id", "sales": "card_id", "auctions": "card_id",
    "card_history": "card_id", "nfts": "card_id", "watchlists": "card_id",
    "trade_offers": "id", "price_alerts": "id",
}


@dataclass(frozen=True)
class Parsed:
    """One usable change: ``after`` for c/u/r, ``before`` for d and u (if needed)."""

    table: str
    op: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    ts_ms: int  # the commit time (``source.ts_ms``)

    @property
    def row(self) -> dict[str, Any]:
        """The current image (``before`` of a delete)."""
        image = self.after if self.op != "d" else self.before
        assert image is not None
        return image

    @property
    def key(self) -> str:
        return str(self.row[KEY_COLUMN[self.table]])

    @property
    def created(self) -> bool:
        """A create or a snapshot read: a row seen for the first time (or again, re-snapshot)."""
        return self.op in ("c", "r")


def to_ms(value: Any) -> int:
    """Epoch milliseconds of a Debezium time: ISO-8601 text, or epoch micros as an integer."""
    if isinstance(value, bool):
        raise MalformedEvent(f"not a time: {value!r}")
    if isinstance(value, int):
        return value // 1000
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as exc:
            raise MalformedEvent(f"not a time: {value!r}") from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        whole = int(moment.replace(microsecond=0).timestamp())  # exact: no float rounding
        return whole * 1000 + moment.microsecond // 1000
    raise MalformedEvent(f"not a time: {value!r}")


def _check(table: str, image: dict[str, Any], what: str) -> None:
    for column, kind in COLUMNS[table].items():
        if column not in image:
            raise MalformedEvent(f"{table}.{what} has no '{column}'")
        value = image[column]
        if value is None and kind.endswith("?"):
            continue
        if kind in (STR, OPT_STR):
            ok = isinstance(value, str) and value != ""
        elif kind in (INT, OPT_INT):
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            to_ms(value)
            ok = True
        if not ok:
            raise MalformedEvent(f"{table}.{what}.{column} is not a {kind}: {value!r}")


@malformed_on_shape_errors
def parse(table: str, raw: str | bytes | None) -> Parsed | None:
    """The checked change of a message read from ``table``'s topic; None for a tombstone.

    Raises :class:`MalformedEvent` when the message is not a change of ``table`` or an
    image lacks (or mistypes) a column the rules read.
    """
    if table not in COLUMNS:
        raise MalformedEvent(f"no rules for table {table!r}")
    change = decode_change(raw)
    if change is None:
        return None
    if change.table is not None and change.table != table:
        raise MalformedEvent(f"a {change.table!r} change on the {table!r} topic")
    ts_ms = change.source.get("ts_ms")
    if not isinstance(ts_ms, int) or isinstance(ts_ms, bool):
        raise MalformedEvent(f"source.ts_ms missing or not an integer: {ts_ms!r}")
    if change.op == "d":
        if change.before is None:
            raise MalformedEvent("delete without 'before'")
        key = KEY_COLUMN[table]
        if not isinstance(change.before.get(key), str) or not change.before[key]:
            raise MalformedEvent(f"delete without 'before.{key}'")
        if table == "watchlists" and not isinstance(change.before.get("user_id"), str):
            raise MalformedEvent("watchlist delete without 'before.user_id'")
        return Parsed(table, "d", change.before, None, ts_ms)
    assert change.after is not None
    _check(table, change.after, "after")
    before = change.before
    if change.op == "u" and table in NEEDS_BEFORE:
        if before is None:
            raise MalformedEvent(f"{table} update without 'before' (REPLICA IDENTITY FULL)")
        _check(table, before, "before")
    return Parsed(table, change.op, before, change.after, ts_ms)
