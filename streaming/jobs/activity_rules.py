"""The ``ece.market.activity`` rules: which checked CDC change is which business event.

Exactly the table of docs/realtime.md. Every event's id hashes the table, the
primary key and the business *transition* (``listings:<id>:created``), never the
LSN, so a replay or a CDC re-snapshot (op ``r``) yields the same id again. Pure
Python (no pyflink), used by :mod:`streaming.jobs.market_activity`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ece.contracts.realtime import event_id, iso_millis
from streaming.jobs.cdc_rows import Parsed

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


def _event(kind: str, table: str, pk: str, transition: str, p: Parsed, card: CardInfo | None,
           *, card_id: str, user_id: str | None, counterparty_id: str | None = None,
           price_cents: int | None = None, reference_id: str) -> dict[str, Any]:
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
        "at": iso_millis(p.ts_ms),
    }


def _listing(p: Parsed, card: CardInfo | None) -> list[dict[str, Any]]:
    row = p.row
    common = {"card_id": row["card_id"], "user_id": row["seller_id"],
              "price_cents": row["price_cents"], "reference_id": row["id"]}
    if p.created:
        return [_event("listing_created", "listings", row["id"], "created", p, card, **common)]
    before = p.before or {}
    if p.op == "u" and before.get("status") == "active" and row["status"] == "cancelled":
        return [_event("listing_cancelled", "listings", row["id"], "cancelled", p, card,
                       **common)]
    return []


def _sale(p: Parsed, card: CardInfo | None) -> list[dict[str, Any]]:
    row = p.row
    if not p.created:
        return []
    return [_event("sale", "sales", row["id"], "sold", p, card, card_id=row["card_id"],
                   user_id=row["buyer_id"], counterparty_id=row["seller_id"],
                   price_cents=row["price_cents"], reference_id=row["listing_id"])]


def _auction(p: Parsed, card: CardInfo | None) -> list[dict[str, Any]]:
    row = p.row
    common = {"card_id": row["card_id"], "reference_id": row["id"]}
    if p.created:
        return [_event("auction_started", "auctions", row["id"], "started", p, card,
                       user_id=row["seller_id"], price_cents=row["start_price_cents"],
                       **common)]
    if p.op != "u":
        return []
    before = p.before or {}
    events = []
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
                   user_id=card.owner_id if card else None, reference_id=row["id"])]


RULES = {"listings": _listing, "sales": _sale, "auctions": _auction,
         "card_history": _history, "nfts": _nft}


def activity_events(p: Parsed, card: CardInfo | None) -> list[dict[str, Any]]:
    """The activity events (0, 1 or 2) of one checked change, given the card's state."""
    rule = RULES.get(p.table)
    if rule is None or p.op == "d":
        return []
    return rule(p, card)


def dumps(event: dict[str, Any]) -> str:
    """The topic value: compact JSON, keys in the documented order."""
    return json.dumps(event, separators=(",", ":"))
