"""The market pipelines (``market_stats``, ``market_data``) against a real broker, Redis
and the running Flink job.

Activity messages are produced into ``ece.market.activity`` in exactly the format
of docs/realtime.md, CDC messages as the CDC runner writes them. Each test uses
fresh card, user, set and rarity ids, so its scopes hold only its own figures.
Everything goes to partition 0; a later "sentinel" message (for a card in the same
writer bucket) proves everything before it was applied.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from ece import kafka
from ece.contracts import market_data as md
from ece.contracts.realtime import event_id, iso_millis
from ece.contracts.topics import DLQ, MARKET_ACTIVITY, MARKET_STATS, cdc_topic
from ops.cli.rebuild import run_rebuild
from ops.stack.supervisor import Platform
from streaming.jobs.market_data import bucket_of

WAIT_S = 60.0
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "streaming" / "topics" / "schemas"
                     / "ece.market.stats.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA,
                                            format_checker=jsonschema.FormatChecker())


@pytest.fixture(scope="module")
def flink(platform: Platform) -> Iterator[Platform]:
    platform.require("broker", "redis", "flink")
    kafka.ensure_topics(platform.settings, [MARKET_ACTIVITY, MARKET_STATS, DLQ,
                                            *(cdc_topic(t) for t in
                                              ("cards", "card_valuations", "auctions"))])
    yield platform


@pytest.fixture(scope="module")
def producer(flink: Platform) -> Iterator[Producer]:
    prod = Producer({"bootstrap.servers": flink.settings.kafka_bootstrap,
                     "enable.idempotence": True, "linger.ms": 0})
    yield prod
    prod.flush(10)


@pytest.fixture(scope="module")
def hot(flink: Platform) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(flink.settings.redis_url, decode_responses=True)
    yield client
    client.close()


def _id() -> str:
    return str(uuid.uuid4())


def _now() -> int:
    return int(time.time() * 1000)


def activity(kind: str, card: str, ref: str, *, at_ms: int | None = None,
             price: int | None = None, user: str | None = None, other: str | None = None,
             set_name: str = "Base", rarity: str = "holo", transition: str | None = None) -> str:
    table = {"sale": "sales", "listing_created": "listings", "listing_cancelled": "listings",
             "bid": "auctions", "auction_started": "auctions", "auction_ended": "auctions"}[kind]
    step = transition or {"listing_created": "created", "listing_cancelled": "cancelled",
                          "auction_started": "started", "auction_ended": "ended",
                          "sale": "sold", "bid": f"bid:{price}"}[kind]
    return json.dumps({
        "event_id": event_id(table, ref, step), "type": kind, "card_id": card,
        "user_id": user, "counterparty_id": other, "price_cents": price, "reference_id": ref,
        "set_name": set_name, "rarity": rarity, "at": iso_millis(at_ms or _now())})


def cdc(table: str, row: dict[str, Any], op: str = "u") -> str:
    """A CDC message. Cards go as snapshot reads (``r``): an ownership *update* makes
    ``chain_reconciliation`` (same job) ask Postgres, which these tests do not run."""
    return json.dumps({"before": None, "after": row, "op": op, "ts_ms": _now(),
                       "source": {"lsn": 1, "txId": 1, "ts_ms": _now(), "table": table,
                                  "schema": "public", "db": "ece", "connector": "postgresql"}})


def card_row(card: str, owner: str, version: int, set_name: str, rarity: str) -> dict[str, Any]:
    return {"id": card, "name": "Charizard", "set_name": set_name, "number": "4/102",
            "rarity": rarity, "edition": None, "attributes": "{}", "owner_id": owner,
            "status": "active", "image_object_key": None, "version": version,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}


def send(producer: Producer, topic: str, key: str, value: str) -> None:
    errors: list[Any] = []
    producer.produce(topic, key=key, value=value, partition=0,
                     on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(10)
    assert errors == [None], errors


def wait(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def sibling(card: str) -> str:
    while True:
        other = _id()
        if bucket_of(other) == bucket_of(card):
            return other


def sentinel(producer: Producer, hot: redis.Redis, card: str, topic: str) -> None:
    """A later message on ``topic`` for a card in ``card``'s bucket, and wait for it."""
    other = sibling(card)
    if topic == MARKET_ACTIVITY:
        listing = _id()
        send(producer, topic, other, activity("listing_created", other, listing, price=1,
                                              user=_id(), set_name=_id()))
        wait(lambda: hot.zscore(md.listings_key(md.card_scope(other)), listing) is not None,
             "the activity sentinel")
    else:
        owner = _id()
        send(producer, topic, other, cdc("cards", card_row(other, owner, 1, _id(), "x"), op="r"))
        wait(lambda: hot.hexists(md.portfolio_key(owner), other), "the cards sentinel")


def floor(hot: redis.Redis, scope: str) -> float | None:
    lowest = hot.zrange(md.listings_key(scope), 0, 0, withscores=True)
    return lowest[0][1] if lowest else None


def volume_24h(hot: redis.Redis, scope: str) -> tuple[int, int]:
    members = hot.zrangebyscore(md.sales_key(scope), _now() - md.DAY_MS, "+inf")
    return len(members), sum(md.member_price(m) for m in members)


class Scenario:
    """One card's market: listings, a sale, a cancel, an auction, owner and valuation."""

    def __init__(self) -> None:
        self.card, self.seller, self.buyer = _id(), _id(), _id()
        self.bidders = [_id(), _id()]
        self.set_name, self.rarity = f"set-{uuid.uuid4().hex[:8]}", f"r-{uuid.uuid4().hex[:6]}"
        self.listings = {_id(): 500, _id(): 800, _id(): 650}
        self.auction = _id()
        self.ends_at = iso_millis(_now() + 3_600_000)
        self.activity_messages = self._activity()  # built once: a replay sends the same bytes
        self.cdc_messages = self._cdc()

    def _activity(self) -> list[str]:
        l1, _l2, l3 = self.listings
        kw = {"set_name": self.set_name, "rarity": self.rarity}
        out = [activity("listing_created", self.card, ref, price=price, user=self.seller, **kw)
               for ref, price in self.listings.items()]
        out.append(activity("sale", self.card, l1, price=500, user=self.buyer, other=self.seller,
                            transition=f"sold-{l1}", **kw))
        out.append(activity("listing_cancelled", self.card, l3, price=650, user=self.seller,
                            **kw))
        out.append(activity("auction_started", self.card, self.auction, price=100,
                            user=self.seller, **kw))
        for i, (bidder, bid) in enumerate(zip(self.bidders * 2, (150, 200, 250), strict=False)):
            out.append(activity("bid", self.card, self.auction, price=bid, user=bidder,
                                other=self.seller, transition=f"bid:{i + 1}", **kw))
        return out

    def _cdc(self) -> list[tuple[str, str]]:
        return [
            (cdc_topic("cards"), cdc("cards", card_row(self.card, self.seller, 1, self.set_name,
                                                       self.rarity), op="r")),
            (cdc_topic("card_valuations"), cdc("card_valuations", {
                "id": _id(), "card_id": self.card, "value_cents": 900, "source": "model",
                "at": "2026-11-30T10:00:00Z"}, op="c")),
            (cdc_topic("card_valuations"), cdc("card_valuations", {
                "id": _id(), "card_id": self.card, "value_cents": 1, "source": "model",
                "at": "2026-11-29T10:00:00Z"}, op="c")),  # older: never the card's value
            (cdc_topic("auctions"), cdc("auctions", {
                "id": self.auction, "card_id": self.card, "seller_id": self.seller,
                "start_price_cents": 100, "reserve_price_cents": None,
                "min_increment_cents": 10, "current_bid_cents": 250,
                "current_bidder_id": self.bidders[0], "bid_count": 3,
                "starts_at": "2026-12-01T00:00:00Z", "ends_at": self.ends_at,
                "status": "active", "result": None, "created_at": "2026-12-01T00:00:00Z",
                "updated_at": iso_millis(_now())})),
        ]

    def send_all(self, producer: Producer, hot: redis.Redis) -> None:
        for value in self.activity_messages:
            send(producer, MARKET_ACTIVITY, self.card, value)
        for topic, value in self.cdc_messages:
            send(producer, topic, json.dumps({"id": self.card}), value)
        sentinel(producer, hot, self.card, MARKET_ACTIVITY)
        sentinel(producer, hot, self.card, cdc_topic("cards"))
        wait(lambda: hot.hget(md.portfolio_key(self.seller), self.card) == "900",
             "the valuation in the owner's portfolio")
        wait(lambda: hot.hget(md.auction_key(self.auction), "ends_at") == self.ends_at,
             "the auction's end time")

    def scopes(self) -> list[str]:
        """Its scopes but ``all`` (which other tests' cards share)."""
        return [md.card_scope(self.card), *md.market_scopes(self.set_name, self.rarity)[1:]]


@pytest.fixture(scope="module")
def scenario(flink: Platform, producer: Producer, hot: redis.Redis) -> Scenario:
    built = Scenario()
    built.send_all(producer, hot)
    return built


def test_per_card_and_per_scope_figures(scenario: Scenario, hot: redis.Redis) -> None:
    s = scenario
    card = md.card_scope(s.card)
    last = hot.hgetall(md.last_sale_key(s.card))
    assert last["price_cents"] == "500" and int(last["at_ms"]) <= _now()
    for scope in [card, *md.market_scopes(s.set_name, s.rarity)[1:]]:
        assert volume_24h(hot, scope) == (1, 500)
        assert floor(hot, scope) == 800  # 500 sold, 650 cancelled: the floor fell back
        assert hot.zcard(md.listings_key(scope)) == 1
        assert hot.smembers(md.auctions_key(scope)) == {s.auction}
    assert hot.hgetall(md.auction_key(s.auction)) == {
        "card_id": s.card, "current_bid_cents": "250", "bidder_count": "2",
        "ends_at": s.ends_at, "status": "active"}
    assert hot.zscore(md.leaderboard_key("traders"), s.buyer) == 500
    assert hot.zscore(md.leaderboard_key("traders"), s.seller) == 500
    assert hot.hgetall(md.portfolio_key(s.seller)) == {s.card: "900"}
    assert hot.zscore(md.leaderboard_key("collectors"), s.seller) == 900
    assert hot.get(md.updated_key(card)) is not None


def _scenario_values(hot: redis.Redis, s: Scenario) -> Any:
    scopes = s.scopes()
    return (
        [hot.zrange(md.sales_key(x), 0, -1, withscores=True) for x in scopes],
        [hot.zrange(md.listings_key(x), 0, -1, withscores=True) for x in scopes],
        [sorted(hot.smembers(md.auctions_key(x))) for x in scopes],
        hot.hgetall(md.last_sale_key(s.card)), hot.hgetall(md.auction_key(s.auction)),
        hot.hgetall(md.portfolio_key(s.seller)), hot.hgetall(md.portfolio_key(s.buyer)),
        [hot.zscore(md.leaderboard_key("traders"), u) for u in (s.buyer, s.seller)],
        [hot.zscore(md.leaderboard_key("collectors"), u) for u in (s.buyer, s.seller)],
    )


def test_replay_changes_nothing_and_owner_moves(scenario: Scenario, producer: Producer,
                                                hot: redis.Redis) -> None:
    s = scenario
    before = _scenario_values(hot, s)
    for value in s.activity_messages:
        send(producer, MARKET_ACTIVITY, s.card, value)
    for topic, value in s.cdc_messages:
        send(producer, topic, json.dumps({"id": s.card}), value)
    sentinel(producer, hot, s.card, MARKET_ACTIVITY)
    sentinel(producer, hot, s.card, cdc_topic("cards"))
    time.sleep(1.0)  # the valuations and auctions topics have no sentinel of their own
    assert _scenario_values(hot, s) == before

    send(producer, cdc_topic("cards"), json.dumps({"id": s.card}),
         cdc("cards", card_row(s.card, s.buyer, 2, s.set_name, s.rarity), op="r"))
    wait(lambda: hot.hget(md.portfolio_key(s.buyer), s.card) == "900", "the card's new owner")
    assert not hot.hexists(md.portfolio_key(s.seller), s.card)
    assert hot.zscore(md.leaderboard_key("collectors"), s.buyer) == 900
    assert hot.zscore(md.leaderboard_key("collectors"), s.seller) is None


def _read(flink: Platform, topic: str, until: Callable[[list[dict[str, Any]]], bool],
          timeout: float) -> list[dict[str, Any]]:
    """Every record of ``topic`` from offset 0 (key attached as ``_key``), until ``until``."""
    consumer = Consumer({"bootstrap.servers": flink.settings.kafka_bootstrap,
                         "group.id": f"test-{uuid.uuid4().hex}", "enable.auto.commit": False})
    meta = consumer.list_topics(topic, timeout=10)
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.topics[topic].partitions])
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(seen):
            msg = consumer.poll(0.2)
            if msg is None or msg.error() or msg.value() is None:
                continue
            record = json.loads(msg.value())
            record["_key"] = msg.key().decode() if msg.key() else None
            record["_seen_ms"] = _now()
            seen.append(record)
    finally:
        consumer.close()
    return seen


def test_stats_windows_deadline_late_events_and_schema(flink: Platform, producer: Producer) -> None:
    quiet, busy = _id(), _id()
    now = _now()
    send(producer, MARKET_ACTIVITY, quiet, activity("sale", quiet, _id(), price=700, user=_id(),
                                                    other=_id(), at_ms=now))
    quiet_start = now - now % 60_000
    # busy: a window already past its deadline, the watermark moving on, a straggler
    # 6 minutes late (re-emits) and one 11 minutes late (to the DLQ, reason late)
    old = now - 6 * 60_000
    old_start = old - old % 60_000
    marker = uuid.uuid4().hex
    too_late = activity("sale", busy, f"late-{marker}", price=5, user=_id(), other=_id(),
                        at_ms=now - 11 * 60_000)
    for value in (
        activity("sale", busy, _id(), price=1_000, user=_id(), other=_id(), at_ms=old),
        activity("sale", busy, _id(), price=2_000, user=_id(), other=_id(), at_ms=now),
    ):
        send(producer, MARKET_ACTIVITY, busy, value)

    def window(records: list[dict[str, Any]], card: str, start: int) -> list[dict[str, Any]]:
        return [r for r in records if r["card_id"] == card
                and r["window_start"] == iso_millis(start)]

    first = _read(flink, MARKET_STATS, lambda rs: bool(window(rs, busy, old_start)), WAIT_S)
    assert window(first, busy, old_start)[-1]["sales"] == 1
    straggler = activity("sale", busy, _id(), price=300, user=_id(), other=_id(),
                         at_ms=old_start + 1)
    send(producer, MARKET_ACTIVITY, busy, straggler)
    send(producer, MARKET_ACTIVITY, busy, straggler)  # a replay: counted once
    send(producer, MARKET_ACTIVITY, busy, too_late)

    deadline_ms = quiet_start + 60_000 + 60_000
    records = _read(flink, MARKET_STATS,
                    lambda rs: bool(window(rs, quiet, quiet_start))
                    and any(r["sales"] == 2 for r in window(rs, busy, old_start)),
                    max(5.0, (deadline_ms - _now()) / 1000 + 5))
    (quiet_window,) = window(records, quiet, quiet_start)
    assert quiet_window["_seen_ms"] <= deadline_ms, "a quiet window came later than 1 min"
    assert (quiet_window["sales"], quiet_window["volume_cents"], quiet_window["_key"]) == \
        (1, 700, quiet)
    corrected = window(records, busy, old_start)[-1]
    assert (corrected["sales"], corrected["volume_cents"], corrected["min_price_cents"],
            corrected["max_price_cents"], corrected["last_price_cents"]) == (2, 1_300, 300,
                                                                             1_000, 1_000)
    assert [r["sales"] for r in window(records, busy, old_start)] == [1, 2]
    for record in records:
        VALIDATOR.validate({k: v for k, v in record.items() if not k.startswith("_")})

    dead = _read(flink, DLQ, lambda rs: any(marker in (r.get("payload") or "") for r in rs),
                 WAIT_S)
    (late,) = [r for r in dead if marker in (r.get("payload") or "")
               and r["pipeline"] == "market_stats"]
    assert late["reason"] == "late" and late["_key"] == MARKET_ACTIVITY


def test_malformed_activity_goes_to_the_dlq(flink: Platform, producer: Producer) -> None:
    marker = uuid.uuid4().hex
    bad = [f"{{not json {marker}", json.dumps({"type": "sale", "card_id": marker})]
    for value in bad:
        send(producer, MARKET_ACTIVITY, marker, value)
    dead = _read(flink, DLQ, lambda rs: len([r for r in rs if marker in (r.get("payload") or "")])
                 >= 4, WAIT_S)
    found = {(r["pipeline"], r["payload"]) for r in dead if marker in (r.get("payload") or "")}
    assert found == {(p, v) for p in ("market_stats", "market_data") for v in bad}
    assert all(r["reason"] == "malformed" and r["_key"] == MARKET_ACTIVITY
               for r in dead if marker in (r.get("payload") or ""))


def _snapshot(hot: redis.Redis) -> dict[str, Any]:
    """Every hot-set value, except the ones that say when or by whom it was built."""
    skip = {md.READY_KEY, md.GENERATION_KEY}
    out: dict[str, Any] = {}
    for key in hot.scan_iter(match=f"{md.PREFIX}*", count=1000):
        if key in skip or key.endswith(":updated_at"):
            continue
        kind = hot.type(key)
        if kind == "zset":
            out[key] = hot.zrange(key, 0, -1, withscores=True)
        elif kind == "hash":
            out[key] = hot.hgetall(key)
        elif kind == "set":
            out[key] = sorted(hot.smembers(key))
        elif kind == "string":
            out[key] = hot.get(key)
    return out


AUCTION_PREFIX = md.auction_key("")


def _without_ended_auctions(snapshot: dict[str, Any], ended: set[str]) -> dict[str, Any]:
    """``snapshot`` without the auctions in ``ended``: their hashes and set memberships."""
    out: dict[str, Any] = {}
    for key, value in snapshot.items():
        if key.startswith(AUCTION_PREFIX) and key[len(AUCTION_PREFIX):] in ended:
            continue
        if key.endswith(":auctions") and isinstance(value, list):
            value = [v for v in value if v not in ended]
            if not value:
                continue
        out[key] = value
    return out


def _ended_by_now(snapshot: dict[str, Any]) -> set[str]:
    """Auctions of the snapshot whose end time has passed: other tests of the session
    left them open, and the clock, not the restart, closes them meanwhile."""
    now = datetime.now(UTC)
    return {key[len(AUCTION_PREFIX):] for key, value in snapshot.items()
            if key.startswith(AUCTION_PREFIX) and isinstance(value, dict)
            and value.get("ends_at")
            and datetime.fromisoformat(value["ends_at"].replace("Z", "+00:00")) <= now}


def _settles_to(hot: redis.Redis, before: dict[str, Any], what: str, timeout: float) -> None:
    """Wait until the hot set equals ``before`` (less the auctions that have ended by
    their clock since: a correct hot set changes those); on timeout, name the keys that
    differ."""
    deadline = time.monotonic() + timeout
    while True:
        ended = _ended_by_now(before)
        expected = _without_ended_auctions(before, ended)
        found = _without_ended_auctions(_snapshot(hot), ended)
        if found == expected or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    differ = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
    if differ:
        shown = {k: {"expected": expected.get(k), "found": found.get(k)} for k in differ[:12]}
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}: "
                             f"{len(differ)} keys differ, first {shown}")


def test_a_stopped_or_restarted_writer_stops_vouching_for_the_hot_set(
        flink: Platform, scenario: Scenario, hot: redis.Redis) -> None:
    """While the writer is down or catching up, the API must answer from PostgreSQL: a
    hot set that misses what was committed meanwhile may not be declared ready."""
    wait(lambda: bool(hot.exists(md.READY_KEY)), "the hot set to be ready")
    before = _snapshot(hot)
    part = flink.part("flink")
    part.stop()
    wait(lambda: not hot.exists(md.READY_KEY), "a stopped writer's readiness to lapse",
         md.READY_TTL_S + 2)
    hot.set(md.READY_KEY, "1", ex=600)  # what a writer stopped a moment ago leaves behind
    part.start()
    wait(lambda: not hot.exists(md.READY_KEY), "the restarted writer to withdraw it", 120)
    wait(lambda: bool(hot.exists(md.READY_KEY)), "the resumed writer to be ready again", 120)
    # resumed from its checkpoint (absolute commands replayed), not rebuilt or doubled
    _settles_to(hot, before, "the resumed hot set to equal the original", 30)


def test_rebuild_from_the_topics_gives_the_same_hot_set(flink: Platform, scenario: Scenario,
                                                        hot: redis.Redis) -> None:
    time.sleep(1.0)
    before = _snapshot(hot)
    assert md.sales_key(md.card_scope(scenario.card)) in before
    part = flink.part("flink")
    said: list[str] = []

    def stop() -> bool:
        part.stop()
        return True

    run_rebuild(flink.settings, stop=stop, start=part.start, wait=True, timeout=240,
                say=said.append)
    assert hot.exists(md.READY_KEY)
    assert any("deleted" in line for line in said) and said[-1] == "hot set rebuilt and ready"
    _settles_to(hot, before, "the rebuilt hot set to equal the original", 60)
