"""The ``ece.notifications`` rules: who hears about which event (docs/realtime.md, kinds).

Pure Python (no pyflink), used by :mod:`streaming.jobs.notifications`. A rule gets
one source (an activity event, or a checked CDC change) and the state the job
keeps (watchers of the card, one auction, the price alerts) and returns the
notifications as plain dicts. Ids are deterministic: ``notification_id`` of the
source event id, the kind and the recipient, so a replay repeats them exactly;
``created_at`` is the source's commit time, never the wall clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ece.contracts.realtime import ENDING_SOON_LEAD_MS, event_id, iso_millis, notification_id
from streaming.jobs.cdc_rows import Parsed, to_ms

NO_NAME = "a card"


def money(cents: int | None) -> str:
    """``$1,234.56``: how titles write a price."""
    return f"${(cents or 0) / 100:,.2f}"


def note(user_id: str, kind: str, source_event_id: str, created_at: str,
         payload: dict[str, Any]) -> dict[str, Any]:
    """One notification, in the topic's field order."""
    return {"id": notification_id(source_event_id, kind, user_id), "user_id": user_id,
            "kind": kind, "payload": payload, "source_event_id": source_event_id,
            "created_at": created_at}


def dumps(notification: dict[str, Any]) -> str:
    return json.dumps(notification, separators=(",", ":"))


def _name(name: str | None) -> str:
    return name or NO_NAME


# --- from activity events -------------------------------------------------------


def from_activity(event: dict[str, Any], card_name: str | None,
                  watchers: dict[str, int]) -> list[dict[str, Any]]:
    """``listing_sold``, ``nft_minted`` and ``watched_card_listed`` of one activity event.

    ``watchers`` maps user id to the watch's creation time (epoch ms); only watches
    created at or before the event's ``at`` count, and never the seller.
    """
    kind, at, name = event["type"], event["at"], _name(card_name)
    source, card_id, price = event["event_id"], event["card_id"], event["price_cents"]
    if kind == "sale" and event["counterparty_id"]:
        return [note(event["counterparty_id"], "listing_sold", source, at, {
            "card_id": card_id, "listing_id": event["reference_id"], "price_cents": price,
            "title": f"Your listing of {name} sold for {money(price)}"})]
    if kind == "nft_minted" and event["user_id"]:
        return [note(event["user_id"], "nft_minted", source, at, {
            "card_id": card_id, "nft_id": event["reference_id"],
            "title": f"Your NFT of {name} was minted"})]
    if kind in ("listing_created", "auction_started"):
        at_ms = to_ms(at)
        if kind == "listing_created":
            ref = {"listing_id": event["reference_id"]}
            title = f"{name}, on your watchlist, was listed for {money(price)}"
        else:
            ref = {"auction_id": event["reference_id"]}
            title = f"An auction for {name}, on your watchlist, starts at {money(price)}"
        return [note(user, "watched_card_listed", source, at, {
                    "card_id": card_id, **ref, "price_cents": price, "title": title})
                for user, since in sorted(watchers.items())
                if since <= at_ms and user != event["user_id"]]
    return []


def alert_matches(alert: dict[str, Any], event: dict[str, Any]) -> bool:
    """A ``listing_created`` at or below the alert's price, every given filter equal,
    the alert older than the listing, and not the seller's own listing."""
    filters = [f for f in ("card_id", "set_name", "rarity") if alert.get(f) is not None]
    return (event["type"] == "listing_created" and bool(filters)
            and event["price_cents"] is not None
            and event["price_cents"] <= alert["max_price_cents"]
            and all(alert[f] == event[f] for f in filters)
            and alert["created_ms"] <= to_ms(event["at"])
            and alert["user_id"] != event["user_id"])


def price_alerts(event: dict[str, Any], card_name: str | None,
                 alerts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``price_alert``: one per matching alert owner (two alerts of one user: one note)."""
    users = sorted({a["user_id"] for a in alerts if alert_matches(a, event)})
    price = event["price_cents"]
    return [note(user, "price_alert", event["event_id"], event["at"], {
                "card_id": event["card_id"], "listing_id": event["reference_id"],
                "price_cents": price,
                "title": f"{_name(card_name)} was listed for {money(price)}, within your alert"})
            for user in users]


def alert_record(p: Parsed) -> dict[str, Any]:
    """What the broadcast state keeps of a ``price_alerts`` row."""
    row = p.row
    return {"user_id": row["user_id"], "max_price_cents": row["max_price_cents"],
            "card_id": row["card_id"], "set_name": row["set_name"], "rarity": row["rarity"],
            "created_ms": to_ms(row["created_at"])}


# --- from CDC changes -------------------------------------------------------------


def from_trade_offer(p: Parsed) -> list[dict[str, Any]]:
    """``trade_offer_received`` (c/r pending) and ``_accepted`` / ``_rejected`` (u)."""
    row, at = p.row, iso_millis(p.ts_ms)
    if p.created and row["status"] == "pending":
        source = event_id("trade_offers", row["id"], "created")
        return [note(row["to_user_id"], "trade_offer_received", source, at, {
            "offer_id": row["id"], "title": "You received a trade offer"})]
    before = p.before or {}
    if p.op == "u" and before.get("status") == "pending" and row["status"] in (
            "accepted", "rejected"):
        status = row["status"]
        source = event_id("trade_offers", row["id"], status)
        return [note(row["from_user_id"], f"trade_offer_{status}", source, at, {
            "offer_id": row["id"], "title": f"Your trade offer was {status}"})]
    return []


def from_card_history(p: Parsed, card_name: str | None) -> list[dict[str, Any]]:
    """``card_received``: every new owner, whatever the reason (an issue included)."""
    row = p.row
    if not p.created:
        return []
    source = event_id("card_history", row["id"], row["reason"])
    return [note(row["to_user_id"], "card_received", source, iso_millis(p.ts_ms), {
        "card_id": row["card_id"], "title": f"You received {_name(card_name)}"})]


def from_auction(p: Parsed, card_name: str | None) -> list[dict[str, Any]]:
    """``outbid`` (previous bidder), ``auction_won`` (winner), ``auction_ended`` (seller)."""
    if p.op != "u":
        return []
    row, before, at, name = p.row, p.before or {}, iso_millis(p.ts_ms), _name(card_name)
    base = {"card_id": row["card_id"], "auction_id": row["id"]}
    out = []
    previous = before.get("current_bidder_id")
    if previous and previous != row["current_bidder_id"]:
        price = row["current_bid_cents"]
        out.append(note(previous, "outbid", event_id("auctions", row["id"],
                                                     f"bid:{row['bid_count']}"), at, {
            **base, "price_cents": price,
            "title": f"You were outbid on {name}: {money(price)}"}))
    if before.get("status") == "active" and row["status"] == "ended":
        source = event_id("auctions", row["id"], "ended")
        result = row["result"] or "no_sale"
        price = row["current_bid_cents"] if result == "sold" else None
        if result == "sold" and row["current_bidder_id"]:
            out.append(note(row["current_bidder_id"], "auction_won", source, at, {
                **base, "price_cents": price,
                "title": f"You won the auction for {name} at {money(price)}"}))
        title = (f"Your auction of {name} sold for {money(price)}" if result == "sold"
                 else f"Your auction of {name} ended without a sale")
        out.append(note(row["seller_id"], "auction_ended", source, at, {
            **base, "price_cents": price, "result": result, "title": title}))
    return out


# --- auction_ending_soon ------------------------------------------------------------


@dataclass
class AuctionState:
    """What the job keeps of one active auction (keyed by card, one entry per auction)."""

    seller_id: str
    ends_ms: int
    changed_ms: int  # commit time of the change that set ends_at (created_at of the note)
    price_cents: int
    bidders: list[str] = field(default_factory=list)
    notified_ends_ms: int | None = None  # the ends_at an ending-soon went out for

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, text: str) -> AuctionState:
        return cls(**json.loads(text))

    @property
    def due_ms(self) -> int:
        return self.ends_ms - ENDING_SOON_LEAD_MS


def track_auction(state: AuctionState | None, p: Parsed) -> AuctionState | None:
    """The auction's state after a change; None once it is over (ended or cancelled)."""
    row = p.row
    if p.op == "d" or row["status"] != "active":
        return None
    ends_ms = to_ms(row["ends_at"])
    bidders = list(state.bidders) if state else []
    for bidder in ((p.before or {}).get("current_bidder_id"), row["current_bidder_id"]):
        if bidder and bidder not in bidders:
            bidders.append(bidder)
    moved = state is None or state.ends_ms != ends_ms
    return AuctionState(
        seller_id=row["seller_id"], ends_ms=ends_ms,
        changed_ms=p.ts_ms if moved or state is None else state.changed_ms,
        price_cents=row["current_bid_cents"] or row["start_price_cents"], bidders=bidders,
        notified_ends_ms=state.notified_ends_ms if state else None)


def ending_soon_due(state: AuctionState, now_ms: int) -> bool:
    """Time to warn: within the lead, not yet ended, not yet warned for this ``ends_at``."""
    return state.notified_ends_ms != state.ends_ms and state.due_ms <= now_ms < state.ends_ms


def ending_soon(card_id: str, auction_id: str, state: AuctionState, watchers: Iterable[str],
                card_name: str | None) -> list[dict[str, Any]]:
    """``auction_ending_soon`` to every bidder and watcher but the seller.

    The source id includes ``ends_at``: an anti-sniping extension is a new warning,
    a replay of the same schedule the same one.
    """
    source = event_id("auctions", auction_id, f"ending_soon:{state.ends_ms}")
    created_at = iso_millis(max(state.due_ms, state.changed_ms))
    recipients = sorted((set(state.bidders) | set(watchers)) - {state.seller_id})
    return [note(user, "auction_ending_soon", source, created_at, {
                "card_id": card_id, "auction_id": auction_id, "price_cents": state.price_cents,
                "ends_at": iso_millis(state.ends_ms),
                "title": f"The auction for {_name(card_name)} ends soon"})
            for user in recipients]
