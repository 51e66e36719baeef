"""The market-activity rules (docs/realtime.md, first table), one change at a time."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ece.contracts.change_event import MalformedEvent
from ece.contracts.realtime import event_id, iso_millis
from streaming.jobs.activity_rules import CardInfo, activity_events
from streaming.jobs.cdc_rows import parse, to_ms
from tests.unit import realtime_rows as r

TS = 1_764_586_800_123  # 2025-12-01T11:00:00.123Z
CARD = CardInfo(name="Charizard", set_name="Base Set", rarity="holo", owner_id="owner-1")
C, SELLER, BUYER, BIDDER, BIDDER2 = (r.uid() for _ in range(5))
ENDS = "2026-12-01T12:00:00Z"


def events(table: str, op: str, after: dict[str, Any] | None,
           before: dict[str, Any] | None = None, card: CardInfo | None = CARD) -> list[Any]:
    change = parse(table, r.envelope(table, op, after, before, TS))
    assert change is not None
    return activity_events(change, card)


def test_listing_created_on_create_and_snapshot_with_the_same_id() -> None:
    lid = r.uid()
    created = events("listings", "c", r.listing(lid, C, SELLER, 1234))
    assert created == [{
        "event_id": event_id("listings", lid, "created"), "type": "listing_created",
        "card_id": C, "user_id": SELLER, "counterparty_id": None, "price_cents": 1234,
        "reference_id": lid, "set_name": "Base Set", "rarity": "holo",
        "at": iso_millis(TS)}]
    assert created[0]["at"].endswith(".123Z")
    # a snapshot read: the same event, dated by the row (the snapshot's ts_ms is "now")
    assert events("listings", "r", r.listing(lid, C, SELLER, 1234)) == [
        {**created[0], "at": iso_millis(to_ms(r.T0))}]


def test_listing_cancelled_only_from_active() -> None:
    lid = r.uid()
    active, cancelled = r.listing(lid, C, SELLER, 900), r.listing(lid, C, SELLER, 900,
                                                                   "cancelled")
    [event] = events("listings", "u", cancelled, active)
    assert event["type"] == "listing_cancelled"
    assert event["event_id"] == event_id("listings", lid, "cancelled")
    assert event["user_id"] == SELLER and event["price_cents"] == 900
    assert events("listings", "u", r.listing(lid, C, SELLER, 900, "sold"), active) == []
    assert events("listings", "u", r.listing(lid, C, SELLER, 950), active) == []  # price edit
    assert events("listings", "d", None, active) == []


def test_sale_is_buyer_with_seller_as_counterparty() -> None:
    sid, lid = r.uid(), r.uid()
    [event] = events("sales", "c", r.sale(sid, lid, C, BUYER, SELLER, 5000))
    assert (event["type"], event["user_id"], event["counterparty_id"]) == (
        "sale", BUYER, SELLER)
    assert event["reference_id"] == lid and event["price_cents"] == 5000
    assert event["event_id"] == event_id("sales", sid, "sold")
    assert events("sales", "r", r.sale(sid, lid, C, BUYER, SELLER, 5000)) == [
        {**event, "at": iso_millis(to_ms(r.T0))}]


def test_auction_started_bid_and_ended() -> None:
    aid = r.uid()
    start = r.auction(aid, C, SELLER, ENDS)
    [started] = events("auctions", "c", start)
    assert (started["type"], started["user_id"], started["price_cents"]) == (
        "auction_started", SELLER, 1000)
    assert started["event_id"] == event_id("auctions", aid, "started")

    bid1 = r.auction(aid, C, SELLER, ENDS, bid=1000, bidder=BIDDER, bids=1)
    [bid] = events("auctions", "u", bid1, start)
    assert (bid["type"], bid["user_id"], bid["counterparty_id"], bid["price_cents"]) == (
        "bid", BIDDER, SELLER, 1000)
    assert bid["event_id"] == event_id("auctions", aid, "bid:1")

    bid2 = r.auction(aid, C, SELLER, ENDS, bid=1100, bidder=BIDDER2, bids=2)
    ended = {**bid2, "status": "ended", "result": "sold"}
    [end] = events("auctions", "u", ended, bid2)
    assert (end["type"], end["user_id"], end["counterparty_id"], end["price_cents"]) == (
        "auction_ended", SELLER, BIDDER2, 1100)
    assert end["event_id"] == event_id("auctions", aid, "ended")


def test_auction_bid_and_end_in_one_update_and_no_sale() -> None:
    aid = r.uid()
    start = r.auction(aid, C, SELLER, ENDS)
    both = r.auction(aid, C, SELLER, ENDS, bid=1000, bidder=BIDDER, bids=1, status="ended",
                     result="sold")
    assert [e["type"] for e in events("auctions", "u", both, start)] == ["bid", "auction_ended"]
    no_sale = {**start, "status": "ended", "result": "no_sale"}
    [end] = events("auctions", "u", no_sale, start)
    assert end["counterparty_id"] is None and end["price_cents"] is None
    [cancel] = events("auctions", "u", {**start, "status": "cancelled"}, start)
    assert cancel["type"] == "auction_ended" and cancel["counterparty_id"] is None
    # anti-sniping extension alone is no activity
    assert events("auctions", "u", {**start, "ends_at": "2026-12-01T12:02:00Z"}, start) == []


def test_a_snapshot_row_yields_the_events_its_final_state_implies() -> None:
    """A re-snapshot (new broker epoch) sees each row once, in its final state: a cancelled
    listing must not come back as on sale, an ended auction not as active, and each event
    keeps the id and the time (the row's own) the live change gave it."""
    lid, aid = r.uid(), r.uid()
    later = "2026-12-01T11:30:00.250Z"
    cancelled = {**r.listing(lid, C, SELLER, 900, "cancelled"), "updated_at": later}
    created, gone = events("listings", "r", cancelled)
    assert (created["type"], gone["type"]) == ("listing_created", "listing_cancelled")
    assert gone["event_id"] == event_id("listings", lid, "cancelled")
    assert (created["at"], gone["at"]) == (iso_millis(to_ms(r.T0)), "2026-12-01T11:30:00.250Z")
    assert [e["type"] for e in events("listings", "r", r.listing(lid, C, SELLER, 900, "sold"))
            ] == ["listing_created"]  # the sale's own event closes it

    ended = {**r.auction(aid, C, SELLER, ENDS, bid=1500, bidder=BIDDER, bids=3,
                         status="ended", result="sold"), "updated_at": later}
    started, bid, end = events("auctions", "r", ended)
    assert (started["type"], bid["type"], end["type"]) == ("auction_started", "bid",
                                                           "auction_ended")
    assert bid["event_id"] == event_id("auctions", aid, "bid:3") and bid["price_cents"] == 1500
    assert (end["counterparty_id"], end["price_cents"], end["at"]) == (BIDDER, 1500, later)
    assert started["at"] == iso_millis(to_ms(r.T0))
    assert [e["type"] for e in events("auctions", "r", r.auction(aid, C, SELLER, ENDS))] == [
        "auction_started"]


def test_trade_accepted_from_card_history_trade_only() -> None:
    hid, offer = r.uid(), r.uid()
    [event] = events("card_history", "c", r.history(hid, C, SELLER, BUYER, "trade", offer))
    assert (event["type"], event["user_id"], event["counterparty_id"], event["reference_id"]) \
        == ("trade_accepted", BUYER, SELLER, offer)
    assert event["event_id"] == event_id("card_history", hid, "trade")
    assert events("card_history", "c", r.history(hid, C, None, BUYER, "issue")) == []
    assert events("card_history", "c", r.history(hid, C, SELLER, BUYER, "sale")) == []


def test_nft_minted_when_status_becomes_minted_owner_from_card_state() -> None:
    nid = r.uid()
    [event] = events("nfts", "u", r.nft(nid, C, "minted"), r.nft(nid, C, "minting"))
    assert (event["type"], event["user_id"], event["reference_id"]) == (
        "nft_minted", "owner-1", nid)
    assert event["event_id"] == event_id("nfts", nid, "minted")
    assert events("nfts", "r", r.nft(nid, C, "minted")) == [
        {**event, "at": iso_millis(to_ms(r.T0))}]
    assert events("nfts", "u", r.nft(nid, C, "minted"), r.nft(nid, C, "minted")) == []
    assert events("nfts", "u", r.nft(nid, C, "minting"), r.nft(nid, C, "uploading")) == []


def test_unknown_card_gives_null_set_and_rarity() -> None:
    [event] = events("listings", "c", r.listing(r.uid(), C, SELLER, 1), card=None)
    assert event["set_name"] is None and event["rarity"] is None
    [minted] = events("nfts", "r", r.nft(r.uid(), C, "minted"), card=None)
    assert minted["user_id"] is None


def test_cards_feed_state_only() -> None:
    assert events("cards", "c", r.card(C, SELLER)) == []
    change = parse("cards", r.envelope("cards", "u", r.card(C, BUYER, name="Blastoise")))
    assert change is not None
    info = CardInfo.from_row(change.row)
    assert info == CardInfo("Blastoise", "Base Set", "holo", BUYER)
    assert CardInfo.loads(info.dumps()) == info and CardInfo.loads(None) is None


@pytest.mark.parametrize(("table", "raw"), [
    ("listings", "not json"),
    ("listings", "[1]"),
    ("listings", json.dumps({"op": "x", "after": {}})),
    ("listings", r.envelope("listings", "c", None)),
    ("listings", r.envelope("listings", "c", {**r.listing(r.uid(), C, SELLER, 1),
                                               "price_cents": "12"})),
    ("listings", r.envelope("listings", "u", r.listing(r.uid(), C, SELLER, 1))),  # no before
    ("sales", r.envelope("sales", "c", {k: v for k, v in
                                        r.sale(r.uid(), r.uid(), C, BUYER, SELLER, 1).items()
                                        if k != "buyer_id"})),
    ("auctions", r.envelope("auctions", "c", r.auction(r.uid(), C, SELLER, "tomorrow"))),
    ("auctions", r.envelope("listings", "c", r.listing(r.uid(), C, SELLER, 1))),  # wrong table
    ("cards", r.envelope("cards", "c", {**r.card(C, SELLER), "id": ""})),
    ("nfts", r.envelope("nfts", "d", None, None)),
    ("nfts", json.dumps({"op": "c", "after": r.nft(r.uid(), C, "minted"), "source": {}})),
    ("watchlists", r.envelope("watchlists", "c", {**r.watch(SELLER, C), "created_at": True})),
    ("bids", r.envelope("bids", "c", {"id": "x"})),
])
def test_malformed_changes_are_rejected(table: str, raw: str) -> None:
    with pytest.raises(MalformedEvent):
        parse(table, raw)


def test_tombstone_and_times() -> None:
    assert parse("listings", None) is None and parse("listings", "") is None
    assert to_ms("2026-12-01T11:00:00.123999Z") == to_ms("2026-12-01T11:00:00.123Z")
    assert iso_millis(to_ms("2026-12-01T11:00:00.123456Z")) == "2026-12-01T11:00:00.123Z"
    assert to_ms("2026-12-01T12:00:00+01:00") == to_ms("2026-12-01T11:00:00Z")
    assert to_ms(1_764_586_800_123_456) == 1_764_586_800_123  # epoch micros
