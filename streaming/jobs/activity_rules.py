"""The ``ece.market.activity`` rules: which checked CDC change is which business event.

Exactly the table of docs/realtime.md. Every event's id hashes the table, the
primary key and the business *transition* (``listings:<id>:created``), never the
LSN, so a replay or a CDC re-snapshot (op ``r``) yields the same id again. Pure
Python (no pyflink), used by :mod:`streaming.jobs.market_activity`.

A snapshot row (a new broker epoch re-reads every table) is the row's *final* state,
not its history: a cancelled listing or an ended auction reads as one row, and its
``source.ts_ms`` is the moment of the snapshot, maybe days after the sale. So a
snapshot row yields every event its state implies (created then cancelled; started,
the last bid, ended), each dated by the row's own ``created_at``/``updated_at``:
the hot set rebuilt from a re-snapshot then equals the one built live (no cancelled
listing back on the market, no old sale inside the 24-hour window).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ece.contracts.realtime import event_id, iso_millis
from streaming.jobs.cdc_rows import Parsed, to_ms

# Tables whose changes can make activity (cards only feed the card state).
ACTIVITY_TABLES = ("listings", "sales", "auctions", "card_history", "nfts")


@dataclass(frozen=True)
class CardInfo:
    """What the activity and the notifications need of a card, kept in keyed state."""

    name: str | None = None
    set_name: str | None = None
    rarity: str | None = None
    owner_id: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CardInfo:
        return cls(row.get("name"), row.get("set_name"), row.get("rarity"), row.get("owner_id"))

    def dumps(self) -> str:
        return json.dumps([self.name, self.set_name, self.rarity, self.owner_id])

    @classmethod
    def loads(cls, text: str | None) -> CardInfo | None:
        if not text:
            return None
        name, set_name, rarity, owner_id = json.loads(text)
        return cls(name, set_name, rarity, owner_id)


# A snapshot's stand-in for "before": the state every row starts from.
_NEW_AUCTION = {"bid_count": 0, "status": "active"}


def _moment(p: Parsed, column: str) -> int:
    """When the event happened: the commit time of a live change; for a snapshot read the
    row's own ``column`` (the snapshot's ts_ms is when it was read, not when it happened)."""
    if p.op == "r" and p.row.get(column) is not None:
        return to_ms(p.row[column])
    return p.ts_ms


def _event(kind: str, table: str, pk: str, transition: str, p: Parsed, card: CardInfo | None,
           *, card_id: str, user_id: str | None, counterparty_id: str | None = None,
           price_cents: int | None = None, reference_id: str,
           when: str = "created_at") -> dict[str, Any]:
    return {
        "event_id": event_id(table, pk, transition),
        "type": kind,
        "card_id": card_id,
        "user_id": user_id,
        "counterparty_id": counterparty_id,
        "price_cents": price_cents,
        "reference_id": reference_id,
        "set_name": card.set_name if card else None,
        "rarity": card.rarity if card else None,
        "at": iso_millis(_moment(p, when)),
    }


def _listing(p: Parsed, card: CardInfo | None) -> list[dict[str, Any]]:
    row = p.row
    common = {"card_id": row["card_id"], "user_id": row["seller_id"],
              "price_cents": row["price_cents"], "reference_id": row["id"]}
    events = []
    if p.created:
        events.append(_event("listing_created", "listings", row["id"], "created", p, card,
                             **common))
    before = p.before or {}
    was_active = p.op == "r" or (p.op == "u" and before.get("status") == "active")
    if was_active and row["status"] == "cancelled":
        events.append(_event("listing_cancelled", "listings", row["id"], "cancelled", p, card,
                             when="updated_at", **common))
    return events


def _sale(p: Parsed, card: CardInfo | None) -> list[dict[str, Any]]:
    row = p.row
    if not p.created:
        return []
    return [_event("sale", "sales", row["id"], "sold", p, card, card_id=row["card_id"],
                   user_id=row["buyer_id"], counterparty_id=row["seller_id"],
                   price_cents=row["price_cents"], reference_id=row["listing_id"])]


def _auction(p: Parsed, card: CardInfo | None) -> list[dict[str, Any]]:
    row = p.row
    common = {"card_id": row["card_id"], "reference_id": row["id"], "when": "updated_at"}
    events = []
    if p.created:
        events.append(_event("auction_started", "auctions", row["id"], "started", p, card,
                             user_id=row["seller_id"], price_cents=row["start_price_cents"],
                             **{**common, "when": "created_at"}))
    if p.op not in ("u", "r"):
        return events
    before = (p.before or {}) if p.op == "u" else _NEW_AUCTION  # a snapshot: all since start
    if row["bid_count"] > before["bid_count"]:
        events.append(_event("bid", "auctions", row["id"], f"bid:{row['bid_count']}", p, card,
                             user_id=row["current_bidder_id"], counterparty_id=row["seller_id"],
                             price_cents=row["current_bid_cents"], **common))
    if before["status"] == "active" and row["status"] in ("ended", "cancelled"):
        sold = row["status"] == "ended" and row["result"] == "sold"
        events.append(_event("auction_ended", "auctions", row["id"], "ended", p, card,
                             user_id=row["seller_id"],
                             counterparty_id=row["current_bidder_id"] if sold else None,
                             price_cents=row["current_bid_cents"] if sold else None, **common))
    return events


def _history(p: Parsed, card: CardInfo | None) -> list[dict[str, Any]]:
    row = p.row
    if not p.created or row["reason"] != "trade":
        return []
    return [_event("trade_accepted", "card_history", row["id"], "trade", p, card,
                   card_id=row["card_id"], user_id=row["to_user_id"],
                   counterparty_id=row["from_user_id"], reference_id=row["reference_id"]
                   or row["id"])]


def _nft(p: Parsed, card: CardInfo | None) -> list[dict[str, Any]]:
    row = p.row
    if row["status"] != "minted":
        return []
    if p.op == "u" and (p.before or {}).get("status") == "minted":
        return []
    if p.op not in ("u", "r"):
        return []
    return [_event("nft_minted", "nfts", row["id"], "minted", p, card, card_id=row["card_id"],
                   user_id=card.owner_id if card else None, reference_id=row["id"],
                   when="updated_at")]


RULES = {"listings": _listing, "sales": _sale, "auctions": _auction,
         "card_history": _history, "nfts": _nft}


def activity_events(p: Parsed, card: CardInfo | None) -> list[dict[str, Any]]:
    """The activity events (0 to 3) of one checked change, given the card's state."""
    rule = RULES.get(p.table)
    if rule is None or p.op == "d":
        return []
    return rule(p, card)


def dumps(event: dict[str, Any]) -> str:
    """The topic value: compact JSON, keys in the documented order."""
    return json.dumps(event, separators=(",", ":"))
