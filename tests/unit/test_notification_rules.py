"""The notification rules (docs/realtime.md, kinds table): recipients, ids, payloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from ece.contracts.realtime import ENDING_SOON_LEAD_MS, event_id, iso_millis, notification_id
from streaming.jobs import notification_rules as rules
from streaming.jobs.activity_rules import CardInfo, activity_events
from streaming.jobs.cdc_rows import Parsed, parse, to_ms
from tests.unit import realtime_rows as r

TS = 1_764_586_800_123
CARD = CardInfo("Charizard", "Base Set", "holo", None)
C, SELLER, BUYER, BIDDER, BIDDER2, WATCHER, LATE = (r.uid() for _ in range(7))
ENDS_MS = TS + 60 * 60 * 1000
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "streaming" / "topics" / "schemas"
                     / "ece.notifications.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)


def change(table: str, op: str, after: dict[str, Any] | None,
           before: dict[str, Any] | None = None, ts: int = TS) -> Parsed:
    parsed = parse(table, r.envelope(table, op, after, before, ts))
    assert parsed is not None
    return parsed


def activity(table: str, op: str, after: dict[str, Any],
             before: dict[str, Any] | None = None) -> dict[str, Any]:
    [event] = activity_events(change(table, op, after, before), CARD)
    return event


def valid(notes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for note in notes:
        VALIDATOR.validate(note)
        assert note["id"] == notification_id(note["source_event_id"], note["kind"],
                                             note["user_id"])
        assert json.loads(rules.dumps(note)) == note
    return notes


def test_trade_offer_received_accepted_rejected() -> None:
    oid = r.uid()
    pending = r.offer(oid, SELLER, BUYER, "pending")
    [received] = valid(rules.from_trade_offer(change("trade_offers", "c", pending)))
    assert (received["kind"], received["user_id"]) == ("trade_offer_received", BUYER)
    assert received["payload"]["offer_id"] == oid
    assert received["source_event_id"] == event_id("trade_offers", oid, "created")
    assert received["created_at"] == iso_millis(TS)
    assert rules.from_trade_offer(change("trade_offers", "r", pending)) == [received]
    for status in ("accepted", "rejected"):
        [note] = valid(rules.from_trade_offer(
            change("trade_offers", "u", r.offer(oid, SELLER, BUYER, status), pending)))
        assert (note["kind"], note["user_id"]) == (f"trade_offer_{status}", SELLER)
    assert rules.from_trade_offer(
        change("trade_offers", "u", r.offer(oid, SELLER, BUYER, "cancelled"), pending)) == []
    assert rules.from_trade_offer(
        change("trade_offers", "c", r.offer(oid, SELLER, BUYER, "expired"))) == []


def test_listing_sold_to_seller_and_nft_minted_to_owner() -> None:
    sid, lid = r.uid(), r.uid()
    sale = activity("sales", "c", r.sale(sid, lid, C, BUYER, SELLER, 1234))
    [sold] = valid(rules.from_activity(sale, "Charizard", {}))
    assert (sold["kind"], sold["user_id"]) == ("listing_sold", SELLER)
    assert sold["payload"] == {"card_id": C, "listing_id": lid, "price_cents": 1234,
                               "title": "Your listing of Charizard sold for $12.34"}
    assert sold["source_event_id"] == sale["event_id"] and sold["created_at"] == sale["at"]
    minted = {**activity("nfts", "r", r.nft(r.uid(), C, "minted")), "user_id": BUYER}
    [note] = valid(rules.from_activity(minted, None, {}))
    assert (note["kind"], note["user_id"]) == ("nft_minted", BUYER)
    assert note["payload"]["nft_id"] == minted["reference_id"]
    assert "a card" in note["payload"]["title"]
    assert rules.from_activity({**minted, "user_id": None}, None, {}) == []


def test_card_received_for_every_reason() -> None:
    for reason, sender in (("issue", None), ("sale", SELLER), ("trade", SELLER),
                           ("auction", SELLER)):
        hid = r.uid()
        [note] = valid(rules.from_card_history(
            change("card_history", "c", r.history(hid, C, sender, BUYER, reason)), "Charizard"))
        assert (note["kind"], note["user_id"]) == ("card_received", BUYER)
        assert note["source_event_id"] == event_id("card_history", hid, reason)
        assert note["payload"] == {"card_id": C, "title": "You received Charizard"}


def test_outbid_won_and_ended() -> None:
    aid = r.uid()
    ends = iso_millis(ENDS_MS)
    start = r.auction(aid, C, SELLER, ends)
    first = r.auction(aid, C, SELLER, ends, bid=1000, bidder=BIDDER, bids=1)
    assert rules.from_auction(change("auctions", "u", first, start), "X") == []  # no previous
    second = r.auction(aid, C, SELLER, ends, bid=1100, bidder=BIDDER2, bids=2)
    [outbid] = valid(rules.from_auction(change("auctions", "u", second, first), "X"))
    assert (outbid["kind"], outbid["user_id"]) == ("outbid", BIDDER)
    assert outbid["source_event_id"] == event_id("auctions", aid, "bid:2")
    assert outbid["payload"]["price_cents"] == 1100
    same_bidder = r.auction(aid, C, SELLER, ends, bid=1200, bidder=BIDDER2, bids=3)
    assert rules.from_auction(change("auctions", "u", same_bidder, second), "X") == []

    ended = {**second, "status": "ended", "result": "sold"}
    won, end = valid(rules.from_auction(change("auctions", "u", ended, second), "X"))
    assert (won["kind"], won["user_id"]) == ("auction_won", BIDDER2)
    assert (end["kind"], end["user_id"], end["payload"]["result"]) == (
        "auction_ended", SELLER, "sold")
    assert won["source_event_id"] == end["source_event_id"] == event_id("auctions", aid,
                                                                        "ended")
    no_sale = {**start, "status": "ended", "result": "no_sale"}
    [only] = valid(rules.from_auction(change("auctions", "u", no_sale, start), "X"))
    assert only["kind"] == "auction_ended" and only["payload"]["result"] == "no_sale"
    assert only["payload"]["price_cents"] is None
    cancelled = {**start, "status": "cancelled"}
    assert rules.from_auction(change("auctions", "u", cancelled, start), "X") == []
    assert rules.from_auction(change("auctions", "c", start), "X") == []


def test_watched_card_listed_only_to_earlier_watchers_never_the_seller() -> None:
    lid = r.uid()
    listed = activity("listings", "c", r.listing(lid, C, SELLER, 500))
    at_ms = to_ms(listed["at"])
    watchers = {WATCHER: at_ms - 1000, SELLER: at_ms - 1000, LATE: at_ms + 1, BUYER: at_ms}
    notes = valid(rules.from_activity(listed, "Charizard", watchers))
    assert sorted(n["user_id"] for n in notes) == sorted([WATCHER, BUYER])
    assert {n["kind"] for n in notes} == {"watched_card_listed"}
    assert notes[0]["payload"]["listing_id"] == lid
    started = activity("auctions", "c", r.auction(r.uid(), C, SELLER, iso_millis(ENDS_MS)))
    [note] = valid(rules.from_activity(started, "Charizard", {WATCHER: 0}))
    assert note["payload"]["auction_id"] == started["reference_id"]
    cancelled = activity("listings", "u", r.listing(lid, C, SELLER, 500, "cancelled"),
                         r.listing(lid, C, SELLER, 500))
    assert rules.from_activity(cancelled, "Charizard", {WATCHER: 0}) == []


def test_price_alert_filters_price_age_and_seller() -> None:
    listed = activity("listings", "c", r.listing(r.uid(), C, SELLER, 500))
    older = iso_millis(to_ms(listed["at"]) - 1)

    def alert(user: str, price: int, **filters: Any) -> dict[str, Any]:
        created = filters.pop("created_at", older)
        return rules.alert_record(change("price_alerts", "c", r.alert(
            r.uid(), user, price, created_at=created, **filters)))

    matching = [alert(WATCHER, 500, card_id=C), alert(BUYER, 600, set_name="Base Set",
                                                        rarity="holo"),
                alert(WATCHER, 900, rarity="holo")]  # same user twice: one note
    missing = [alert(BIDDER, 499, card_id=C), alert(BIDDER, 900, set_name="Jungle"),
               alert(BIDDER, 900, card_id=C, rarity="common"),
               alert(LATE, 900, card_id=C, created_at=iso_millis(to_ms(listed["at"]) + 5)),
               alert(SELLER, 900, card_id=C)]
    notes = valid(rules.price_alerts(listed, "Charizard", matching + missing))
    assert sorted(n["user_id"] for n in notes) == sorted([WATCHER, BUYER])
    assert notes[0]["payload"]["price_cents"] == 500
    assert all(n["source_event_id"] == listed["event_id"] for n in notes)
    started = activity("auctions", "c", r.auction(r.uid(), C, SELLER, iso_millis(ENDS_MS)))
    assert rules.price_alerts(started, "Charizard", matching) == []
    assert not rules.alert_matches({**matching[0], "card_id": None}, listed)  # no filter


def test_auction_ending_soon_schedule_recipients_and_ids() -> None:
    aid = r.uid()
    ends = iso_millis(ENDS_MS)
    start = r.auction(aid, C, SELLER, ends)
    state = rules.track_auction(None, change("auctions", "c", start))
    assert state is not None and state.due_ms == ENDS_MS - ENDING_SOON_LEAD_MS
    assert not rules.ending_soon_due(state, state.due_ms - 1)
    assert rules.ending_soon_due(state, state.due_ms)
    assert not rules.ending_soon_due(state, ENDS_MS)  # never after the end
    bid = r.auction(aid, C, SELLER, ends, bid=1000, bidder=BIDDER, bids=1)
    state = rules.track_auction(state, change("auctions", "u", bid, start))
    bid2 = r.auction(aid, C, SELLER, ends, bid=1100, bidder=BIDDER2, bids=2)
    state = rules.track_auction(state, change("auctions", "u", bid2, bid))
    assert state is not None and state.bidders == [BIDDER, BIDDER2]
    notes = valid(rules.ending_soon(C, aid, state, [WATCHER, SELLER, BIDDER], "Charizard"))
    assert sorted(n["user_id"] for n in notes) == sorted([BIDDER, BIDDER2, WATCHER])
    assert {n["source_event_id"] for n in notes} == {
        event_id("auctions", aid, f"ending_soon:{ENDS_MS}")}
    assert notes[0]["created_at"] == iso_millis(ENDS_MS - ENDING_SOON_LEAD_MS)
    assert notes[0]["payload"]["price_cents"] == 1100
    state.notified_ends_ms = state.ends_ms
    assert not rules.ending_soon_due(state, state.due_ms)  # warned once per ends_at

    later = iso_millis(ENDS_MS + 120_000)  # anti-sniping moves the end
    moved = {**bid2, "ends_at": later}
    state = rules.track_auction(state, change("auctions", "u", moved, bid2, ts=TS + 7))
    assert state is not None and rules.ending_soon_due(state, state.due_ms)
    again = rules.ending_soon(C, aid, state, [WATCHER], "Charizard")
    assert {n["id"] for n in again}.isdisjoint({n["id"] for n in notes})
    assert rules.AuctionState.loads(state.dumps()) == state
    ended = {**moved, "status": "ended", "result": "sold"}
    assert rules.track_auction(state, change("auctions", "u", ended, moved)) is None
    cancelled = {**start, "status": "cancelled"}
    assert rules.track_auction(None, change("auctions", "r", cancelled)) is None


def test_titles_format_money() -> None:
    assert rules.money(123456) == "$1,234.56" and rules.money(5) == "$0.05"
