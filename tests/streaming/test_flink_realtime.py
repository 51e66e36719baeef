"""``market_activity`` and ``notifications`` against a real broker and the running Flink job.

A small market plays out on CDC-shaped messages (Debezium envelope, key
``{"id": ...}``, exactly what the CDC runner writes): a card whose listing
arrives before its row, a sale, an auction with bids, an anti-sniping extension
and its end, a trade, an NFT mint, a watchlist, price alerts, a card that never
shows up, and a malformed message. Each step waits for its output, so the order
of events per card is known and the produce -> consume latency is measured.
Then every message is produced again: the same ids must come out again.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from jsonschema import Draft202012Validator

from ece import kafka
from ece.contracts.realtime import ENDING_SOON_LEAD_MS, event_id
from ece.contracts.topics import DLQ, MARKET_ACTIVITY, NOTIFICATIONS, cdc_topic
from ops.stack.supervisor import Platform
from streaming.jobs.cdc_rows import KEY_COLUMN, to_ms
from tests.unit import realtime_rows as r

WAIT_S = 60.0
TABLES = ("cards", "listings", "sales", "auctions", "card_history", "nfts", "trade_offers",
          "watchlists", "price_alerts")
SCHEMAS = Path(__file__).resolve().parents[2] / "streaming" / "topics" / "schemas"


def _validator(topic: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{topic}.json").read_text())
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@dataclass
class Outputs:
    """Everything read from the activity, notification and DLQ topics (from offset 0)."""

    consumer: Consumer
    activity: list[tuple[str, dict[str, Any], int]] = field(default_factory=list)
    notes: list[tuple[str, dict[str, Any], int]] = field(default_factory=list)
    dlq: list[tuple[str, dict[str, Any], int]] = field(default_factory=list)

    def drain(self) -> None:
        for msg in self.consumer.consume(500, timeout=0.05):
            if msg.error() or msg.value() is None:
                continue
            try:
                value = json.loads(msg.value())
            except ValueError:
                continue  # other tests inject malformed events into these topics
            row = ((msg.key() or b"").decode(), value, int(time.time() * 1000))
            {MARKET_ACTIVITY: self.activity, NOTIFICATIONS: self.notes,
             DLQ: self.dlq}[msg.topic()].append(row)

    def wait(self, check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.drain()
            if check():
                return
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Market:
    """The scenario's ids, what was produced, and the latencies seen."""

    producer: Producer
    out: Outputs
    ids: dict[str, str]
    sent: list[tuple[str, str, str]] = field(default_factory=list)
    latencies_ms: list[int] = field(default_factory=list)
    labels: list[tuple[int, str]] = field(default_factory=list)

    def send(self, table: str, op: str, after: dict[str, Any] | None,
             before: dict[str, Any] | None = None, raw: str | None = None) -> int:
        ts = int(time.time() * 1000)
        value = raw if raw is not None else r.envelope(table, op, after, before, ts)
        row = after or before or {}
        key = json.dumps({"id": row.get("id") or row.get(KEY_COLUMN[table])})
        topic = cdc_topic(table)
        self.producer.produce(topic, key=key, value=value)
        self.producer.flush(10)
        self.sent.append((topic, key, value))
        return ts

    def activity(self, card: str) -> list[dict[str, Any]]:
        return [v for k, v, _ in self.out.activity if v["card_id"] == card]

    def notes(self) -> list[dict[str, Any]]:
        users = set(self.ids.values())
        return [v for k, v, _ in self.out.notes if v["user_id"] in users]

    def has_note(self, kind: str, user: str, n: int = 1) -> Callable[[], bool]:
        return lambda: sum(1 for v in self.notes()
                           if v["kind"] == kind and v["user_id"] == self.ids[user]) >= n

    def has_activity(self, card: str, kind: str, n: int = 1) -> Callable[[], bool]:
        return lambda: sum(1 for v in self.activity(self.ids[card]) if v["type"] == kind) >= n

    def expect(self, since_ms: int, *checks: Callable[[], bool], what: str) -> None:
        """Wait for every check; record produce -> consume latency of what just came out."""
        try:
            self.out.wait(lambda: all(c() for c in checks), what)
        except AssertionError as exc:
            seen = [(v["type"], v["card_id"] == self.ids["card"])
                    for v in self.activity(self.ids["card"])]
            raise AssertionError(f"{exc}; activity {seen}; notes {_who(self, self.notes())}") \
                from None
        cards = {self.ids["card"], self.ids["ghost"]}
        users = set(self.ids.values())
        ours = [(v, at) for _, v, at in self.out.activity if v["card_id"] in cards]
        ours += [(v, at) for _, v, at in self.out.notes if v["user_id"] in users]
        for value, received in ours:
            at = to_ms(value.get("at") or value["created_at"])
            if at >= since_ms and value.get("kind") != "auction_ending_soon":
                self.latencies_ms.append(received - at)
                self.labels.append((received - at, value.get("type") or value["kind"]))


@pytest.fixture(scope="module")
def flink(platform: Platform) -> Iterator[Platform]:
    # PostgreSQL too: chain_reconciliation (same job) looks up the NFT of every card whose
    # owner changes, and fails the whole job while the database is unreachable.
    platform.require("broker", "redis", "postgres", "migrate")
    # before the job starts, so that it does not have to discover them (2 s) mid-test
    kafka.ensure_topics(platform.settings, [cdc_topic(t) for t in TABLES])
    platform.require("flink")
    yield platform


@pytest.fixture(scope="module")
def market(flink: Platform) -> Iterator[Market]:
    bootstrap = flink.settings.kafka_bootstrap
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-rt-{uuid.uuid4()}",
                         "enable.auto.commit": False,
                         # the dev broker answers a fetch only when its wait is over
                         "fetch.wait.max.ms": 5})
    meta = consumer.list_topics(timeout=10)
    consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING)
                     for t in (MARKET_ACTIVITY, NOTIFICATIONS, DLQ)
                     for p in meta.topics[t].partitions])
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "linger.ms": 0})
    names = ("card", "ghost", "seller", "buyer", "bidder_x", "bidder_y", "watcher", "late",
             "alerter", "listing", "listing2", "listing3", "sale", "auction", "offer", "nft",
             "issue", "sold_history", "trade_history", "alert", "alert2")
    m = Market(producer, Outputs(consumer), {n: r.uid() for n in names})
    try:
        _play(m)
        yield m
    finally:
        producer.flush(10)
        consumer.close()


def _play(m: Market) -> None:
    i = m.ids
    now = int(time.time() * 1000)
    m.send("watchlists", "c", r.watch(i["watcher"], i["card"], r.iso(now - 60_000)))
    m.send("watchlists", "c", r.watch(i["late"], i["card"], r.iso(now + 3_600_000)))
    m.send("price_alerts", "c", r.alert(i["alert"], i["alerter"], 2000, card_id=i["card"],
                                        created_at=r.iso(now - 60_000)))
    m.send("price_alerts", "c", r.alert(i["alert2"], i["alerter"], 1000, set_name="Base Set",
                                        created_at=r.iso(now - 60_000)))
    time.sleep(0.5)  # watches and alerts are older than the listing, and arrive first

    # a listing that arrives before its card's row waits for it
    t = m.send("listings", "c", r.listing(i["listing"], i["card"], i["seller"], 1500))
    m.send("cards", "c", r.card(i["card"], i["seller"]))
    m.send("card_history", "c", r.history(i["issue"], i["card"], None, i["seller"], "issue"))
    m.expect(t, m.has_activity("card", "listing_created"), m.has_note("card_received", "seller"),
             m.has_note("watched_card_listed", "watcher"), m.has_note("price_alert", "alerter"),
             what="listing, card_received, watched_card_listed, price_alert")

    t = m.send("sales", "c", r.sale(i["sale"], i["listing"], i["card"], i["buyer"],
                                    i["seller"], 1500))
    m.send("listings", "u", r.listing(i["listing"], i["card"], i["seller"], 1500, "sold"),
           r.listing(i["listing"], i["card"], i["seller"], 1500))
    m.send("cards", "u", r.card(i["card"], i["buyer"], version=2), r.card(i["card"], i["seller"]))
    m.send("card_history", "c", r.history(i["sold_history"], i["card"], i["seller"], i["buyer"],
                                          "sale", i["sale"]))
    m.expect(t, m.has_activity("card", "sale"), m.has_note("listing_sold", "seller"),
             m.has_note("card_received", "buyer"), what="sale")

    _auction(m)

    t = m.send("trade_offers", "c", r.offer(i["offer"], i["seller"], i["buyer"], "pending"))
    m.expect(t, m.has_note("trade_offer_received", "buyer"), what="trade offer")
    t = m.send("trade_offers", "u", r.offer(i["offer"], i["seller"], i["buyer"], "accepted"),
               r.offer(i["offer"], i["seller"], i["buyer"], "pending"))
    m.send("cards", "u", r.card(i["card"], i["seller"], version=3),
           r.card(i["card"], i["buyer"], version=2))
    m.send("card_history", "c", r.history(i["trade_history"], i["card"], i["buyer"],
                                          i["seller"], "trade", i["offer"]))
    m.expect(t, m.has_note("trade_offer_accepted", "seller"),
             m.has_activity("card", "trade_accepted"), m.has_note("card_received", "seller", 2),
             what="trade accepted")

    m.send("nfts", "c", r.nft(i["nft"], i["card"], "pending"))
    t = m.send("nfts", "u", r.nft(i["nft"], i["card"], "minted"),
               r.nft(i["nft"], i["card"], "minting"))
    m.expect(t, m.has_activity("card", "nft_minted"), m.has_note("nft_minted", "seller"),
             what="nft minted")

    t = m.send("listings", "c", r.listing(i["listing2"], i["card"], i["seller"], 3000))
    m.send("listings", "u", r.listing(i["listing2"], i["card"], i["seller"], 3000, "cancelled"),
           r.listing(i["listing2"], i["card"], i["seller"], 3000))
    m.expect(t, m.has_activity("card", "listing_cancelled"),
             m.has_note("watched_card_listed", "watcher", 2), what="second listing, cancelled")

    m.send("listings", "c", r.listing(i["listing3"], i["ghost"], i["seller"], 100))
    m.send("listings", "x", None, raw=f"not json {i['card']}")
    m.out.wait(m.has_activity("ghost", "listing_created"), "the listing of an unseen card")
    m.out.wait(lambda: any(i["card"] in (v.get("payload") or "") for _, v, _ in m.out.dlq),
               "the malformed message on the DLQ")


def _auction(m: Market) -> None:
    i = m.ids
    start_ms = int(time.time() * 1000)
    ends = r.iso(start_ms + ENDING_SOON_LEAD_MS + 4_000)  # ending soon fires in ~4 s
    opened = r.auction(i["auction"], i["card"], i["buyer"], ends)
    t = m.send("auctions", "c", opened)
    m.expect(t, m.has_activity("card", "auction_started"),
             m.has_note("watched_card_listed", "watcher", 2), what="auction started")
    m.out.wait(m.has_note("auction_ending_soon", "watcher"), "auction_ending_soon (timer)")

    bid_x = r.auction(i["auction"], i["card"], i["buyer"], ends, bid=1000, bidder=i["bidder_x"],
                      bids=1)
    t = m.send("auctions", "u", bid_x, opened)
    m.expect(t, m.has_activity("card", "bid"), what="first bid")
    moved = r.iso(start_ms + ENDING_SOON_LEAD_MS + 6_000)  # anti-sniping: the end moves
    bid_y = r.auction(i["auction"], i["card"], i["buyer"], moved, bid=1100,
                      bidder=i["bidder_y"], bids=2)
    t = m.send("auctions", "u", bid_y, bid_x)
    m.expect(t, m.has_activity("card", "bid", 2), m.has_note("outbid", "bidder_x"),
             what="second bid")
    m.out.wait(m.has_note("auction_ending_soon", "bidder_y"), "ending soon after the extension")
    t = m.send("auctions", "u", {**bid_y, "status": "ended", "result": "sold"}, bid_y)
    m.expect(t, m.has_activity("card", "auction_ended"), m.has_note("auction_won", "bidder_y"),
             m.has_note("auction_ended", "buyer"), what="auction ended")


def _who(m: Market, notes: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    names = {v: k for k, v in m.ids.items()}
    return Counter((n["kind"], names[n["user_id"]]) for n in notes)


def test_activity_events_per_card_in_order(market: Market) -> None:
    i = market.ids
    events = market.activity(i["card"])
    assert [e["type"] for e in events] == [
        "listing_created", "sale", "auction_started", "bid", "bid", "auction_ended",
        "trade_accepted", "nft_minted", "listing_created", "listing_cancelled"]
    by_type = {e["type"]: e for e in events}
    assert events[0]["set_name"] == "Base Set" and events[0]["rarity"] == "holo"  # waited
    assert events[0]["event_id"] == event_id("listings", i["listing"], "created")
    assert (by_type["sale"]["user_id"], by_type["sale"]["counterparty_id"]) == (
        i["buyer"], i["seller"])
    assert by_type["auction_ended"]["counterparty_id"] == i["bidder_y"]
    assert by_type["auction_ended"]["price_cents"] == 1100
    assert by_type["trade_accepted"]["reference_id"] == i["offer"]
    assert by_type["nft_minted"]["user_id"] == i["seller"]  # the owner, from the card's state
    assert [e["user_id"] for e in events if e["type"] == "bid"] == [i["bidder_x"], i["bidder_y"]]
    assert all(k == i["card"] for k, v, _ in market.out.activity if v["card_id"] == i["card"])
    [ghost] = market.activity(i["ghost"])
    assert ghost["set_name"] is None and ghost["rarity"] is None


def test_notifications_go_to_exactly_the_right_users(market: Market) -> None:
    assert _who(market, market.notes()) == Counter({
        ("card_received", "seller"): 2, ("card_received", "buyer"): 1,
        ("watched_card_listed", "watcher"): 3,  # listing, auction, second listing
        ("price_alert", "alerter"): 1,  # one listing under 2000 on the card; the set alert: no
        ("listing_sold", "seller"): 1,
        ("auction_ending_soon", "watcher"): 2, ("auction_ending_soon", "late"): 2,
        ("auction_ending_soon", "bidder_x"): 1, ("auction_ending_soon", "bidder_y"): 1,
        ("outbid", "bidder_x"): 1, ("auction_won", "bidder_y"): 1,
        ("auction_ended", "buyer"): 1,
        ("trade_offer_received", "buyer"): 1, ("trade_offer_accepted", "seller"): 1,
        ("nft_minted", "seller"): 1,
    })
    i = market.ids
    sold = next(n for n in market.notes() if n["kind"] == "listing_sold")
    assert sold["payload"] == {"card_id": i["card"], "listing_id": i["listing"],
                               "price_cents": 1500,
                               "title": "Your listing of Charizard sold for $15.00"}
    ended = next(n for n in market.notes() if n["kind"] == "auction_ended")
    assert ended["payload"]["result"] == "sold"
    soon = {n["source_event_id"] for n in market.notes() if n["kind"] == "auction_ending_soon"}
    assert len(soon) == 2  # the extension is a new warning
    assert all(k == v["user_id"] for k, v, _ in market.out.notes)


def test_every_output_matches_its_schema(market: Market) -> None:
    activity, notes = _validator(MARKET_ACTIVITY), _validator(NOTIFICATIONS)
    ours = set(market.ids.values())
    checked = 0
    for _, value, _ in market.out.activity:
        if value.get("card_id") in ours:
            activity.validate(value)
            checked += 1
    for value in market.notes():
        notes.validate(value)
        checked += 1
    assert checked >= 30


def test_malformed_message_lands_in_the_dlq(market: Market) -> None:
    marker = market.ids["card"]
    # Other readers of the topic (the bronze landing, when the Dagster daemon runs in the
    # same session) report it too, each under its own name: this pipeline reports it once.
    [record] = [(k, v) for k, v, _ in market.out.dlq if marker in (v.get("payload") or "")
                and v["pipeline"] == "market_activity"]
    assert record[0] == cdc_topic("listings")
    assert record[1]["error"]


def test_latency_produce_to_consume(market: Market) -> None:
    lat = sorted(market.latencies_ms)
    assert len(lat) >= 15
    p50, p99 = statistics.median(lat), lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print(f"\nrealtime produce->consume latency: n={len(lat)} p50={p50:.0f} ms "
          f"p99={p99:.0f} ms max={lat[-1]} ms; slowest {sorted(market.labels)[-3:]}")
    assert p50 < 1000


def test_replaying_the_same_input_yields_the_same_ids(market: Market) -> None:
    card_ids = {market.ids["card"], market.ids["ghost"]}
    first_events = Counter(v["event_id"] for _, v, _ in market.out.activity
                           if v["card_id"] in card_ids)
    first_notes = Counter(n["id"] for n in market.notes())
    assert set(first_events.values()) == {1} and set(first_notes.values()) == {1}
    # The card rows are left out: the card's state is already current, and replaying its
    # owner changes out of step with the NFT topic could name another owner.
    for topic, key, value in list(market.sent):
        if topic != cdc_topic("cards"):
            market.producer.produce(topic, key=key, value=value)
    market.producer.flush(10)

    def replayed() -> bool:
        events = Counter(v["event_id"] for _, v, _ in market.out.activity
                         if v["card_id"] in card_ids)
        notes = Counter(n["id"] for n in market.notes())
        return (all(events[e] >= 2 for e in first_events)
                and all(notes[n] >= 2 for n in first_notes))

    market.out.wait(replayed, "the replayed events and notifications")
    time.sleep(1.0)
    market.out.drain()
    events = Counter(v["event_id"] for _, v, _ in market.out.activity if v["card_id"] in card_ids)
    notes = Counter(n["id"] for n in market.notes())
    assert set(events) == set(first_events) and set(notes) == set(first_notes)


def test_checkpoints_complete_with_the_realtime_state(flink: Platform, market: Market) -> None:
    """Keyed, timer and broadcast state must checkpoint, or no offset is ever committed."""
    part = flink.part("flink")
    job = part.job()  # type: ignore[attr-defined]
    assert job is not None
    url = f"{part.url}/jobs/{job['jid']}/checkpoints"  # type: ignore[attr-defined]

    def completed() -> int:
        counts = httpx.get(url, timeout=5).json()["counts"]
        return int(counts["completed"])

    before = completed()
    deadline = time.monotonic() + WAIT_S
    while completed() <= before + 1:
        if time.monotonic() > deadline:
            stats = httpx.get(url, timeout=5).json()
            failed = (stats.get("latest") or {}).get("failed") or {}
            raise AssertionError(f"no checkpoint completed: {stats['counts']}; "
                                 f"last failure: {failed.get('failure_message')}; "
                                 f"job exceptions: {_job_exceptions(url)}")
        time.sleep(0.5)


def _job_exceptions(checkpoints_url: str) -> str:
    """The job's latest failure, as the REST API reports it (for the assertion message)."""
    body = httpx.get(checkpoints_url.replace("/checkpoints", "/exceptions"), timeout=5).json()
    history = (body.get("exceptionHistory") or {}).get("entries") or []
    return str(history[0].get("stacktrace", ""))[:3000] if history else str(body)[:3000]
