"""Checked inputs of the market pipelines: activity events and the CDC rows they need.

``market_stats`` and ``market_data`` read ``ece.market.activity`` (docs/realtime.md)
and, for ``market_data``, the CDC of cards (owner, for portfolios), card_valuations
(latest value per card) and auctions (end time, moved by anti-sniping). Each parser
either returns a value whose fields the rules can use without further checks or
raises :class:`MalformedEvent` (the message goes to the DLQ). Pure Python, no
pyflink import, so ``tests/unit`` exercises every rule without a cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ece.contracts.change_event import MalformedEvent, decode_change, malformed_on_shape_errors
from ece.contracts.realtime import ACTIVITY_TYPES
from streaming.jobs.cdc_rows import to_ms

# What each activity type must carry besides event_id, type, card_id and at.
REQUIRED: dict[str, tuple[str, ...]] = {
    "sale": ("user_id", "counterparty_id", "price_cents", "reference_id"),
    "listing_created": ("user_id", "price_cents", "reference_id"),
    "listing_cancelled": ("reference_id",),
    "auction_started": ("reference_id",),
    "bid": ("user_id", "price_cents", "reference_id"),
    "auction_ended": ("reference_id",),
}


@dataclass(frozen=True)
class Activity:
    """One ``ece.market.activity`` event (price in cents, ``at_ms`` = commit time)."""

    event_id: str
    type: str
    card_id: str
    user_id: str | None
    counterparty_id: str | None
    price_cents: int | None
    reference_id: str | None
    set_name: str | None
    rarity: str | None
    at_ms: int
    at: str


@dataclass(frozen=True)
class CardRow:
    card_id: str
    owner_id: str | None  # None: the card was deleted
    set_name: str | None
    rarity: str | None
    version: int


@dataclass(frozen=True)
class ValuationRow:
    card_id: str
    valuation_id: str
    value_cents: int
    at_ms: int


@dataclass(frozen=True)
class AuctionRow:
    auction_id: str
    card_id: str
    ends_at: str
    status: str
    updated_ms: int


def iso_to_ms(value: Any) -> int:
    """Epoch ms of an ISO-8601 time (``Z`` or an offset; naive means UTC): the one time
    rule of the CDC readers (:func:`streaming.jobs.cdc_rows.to_ms`), text only."""
    if not isinstance(value, str):
        raise MalformedEvent(f"not a time: {value!r}")
    return to_ms(value)


def _text(event: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = event.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or value == "":
        raise MalformedEvent(f"'{name}' is not a non-empty string: {value!r}")
    return value


def _cents(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedEvent(f"'{name}' is not a non-negative integer: {value!r}")
    return value


@malformed_on_shape_errors
def parse_activity(raw: str | bytes | None) -> Activity | None:
    """The event a message carries; None for a type the market pipelines ignore."""
    if raw is None:
        raise MalformedEvent("empty activity message")
    try:
        event = json.loads(raw)
    except ValueError as exc:
        raise MalformedEvent(f"not JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise MalformedEvent("activity is not a JSON object")
    kind = event.get("type")
    if kind not in ACTIVITY_TYPES:
        raise MalformedEvent(f"unknown activity type {kind!r}")
    event_id = _text(event, "event_id", required=True)
    card_id = _text(event, "card_id", required=True)
    at_ms = iso_to_ms(event.get("at"))
    if kind not in REQUIRED:
        return None  # trade_accepted, nft_minted: no market figure depends on them
    needed = REQUIRED[kind]
    price = event.get("price_cents")
    return Activity(
        event_id=str(event_id), type=kind, card_id=str(card_id),
        user_id=_text(event, "user_id", required="user_id" in needed),
        counterparty_id=_text(event, "counterparty_id", required="counterparty_id" in needed),
        price_cents=_cents(price, "price_cents") if "price_cents" in needed or price is not None
        else None,
        reference_id=_text(event, "reference_id", required="reference_id" in needed),
        set_name=_text(event, "set_name", required=False),
        rarity=_text(event, "rarity", required=False),
        at_ms=at_ms, at=str(event["at"]),
    )


def _row_text(row: dict[str, Any], name: str, table: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or value == "":
        raise MalformedEvent(f"{table}.{name} is not a non-empty string: {value!r}")
    return value


def _optional(row: dict[str, Any], name: str) -> str | None:
    value = row.get(name)
    return value if isinstance(value, str) and value else None


@malformed_on_shape_errors
def parse_cdc(table: str, raw: str | bytes | None) -> CardRow | ValuationRow | AuctionRow | None:
    """The row a CDC message of ``cards``, ``card_valuations`` or ``auctions`` carries.

    None for a tombstone and for changes no figure depends on (a deleted valuation
    or auction: the newest one still stands, an auction's end is its status).
    """
    change = decode_change(raw)
    if change is None:
        return None
    if change.table is not None and change.table != table:
        raise MalformedEvent(f"a {change.table!r} change on the {table!r} topic")
    if table == "cards":
        if change.op == "d":
            before = change.before or {}
            version = before.get("version")
            return CardRow(_row_text(before, "id", table), None, None, None,
                           version + 1 if isinstance(version, int) else 2**62)
        row = change.after or {}
        version = row.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise MalformedEvent(f"cards.version is not an integer: {version!r}")
        return CardRow(_row_text(row, "id", table), _optional(row, "owner_id"),
                       _optional(row, "set_name"), _optional(row, "rarity"), version)
    if change.op == "d":
        return None
    row = change.after or {}
    if table == "card_valuations":
        return ValuationRow(_row_text(row, "card_id", table), _row_text(row, "id", table),
                            _cents(row.get("value_cents"), "value_cents"),
                            iso_to_ms(row.get("at")))
    if table == "auctions":
        ends_at = _row_text(row, "ends_at", table)
        iso_to_ms(ends_at)
        return AuctionRow(_row_text(row, "id", table), _row_text(row, "card_id", table),
                          ends_at, _row_text(row, "status", table),
                          iso_to_ms(row.get("updated_at")))
    raise MalformedEvent(f"no market rules for table {table!r}")
