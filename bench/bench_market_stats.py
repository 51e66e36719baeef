"""Events/s of the ``market_stats`` and ``market_data`` pipelines replaying activity
(not a test: prints figures), against a plain Python Kafka consumer doing the same
aggregation into Redis, measured in the same run on the same machine.

1. Starts broker and Redis on free ports and produces ``--events`` synthetic
   ``ece.market.activity`` events (listings, sales of them, cancels, auctions, bids;
   ``--cards`` cards, ``--users`` users, commit times spread over the last hours),
   then one sentinel per writer bucket and one stats sentinel.
2. Baseline: one Python process, confluent-kafka consumer from offset 0, the same
   pure rules (:mod:`streaming.jobs.market_windows`, :mod:`streaming.jobs.market_state`)
   and the same batched Redis writes (:class:`streaming.jobs.market_redis.HotSet`,
   500 events a pipeline) into Redis db 1; stats windows as hashes there.
3. Starts the Flink job (every pipeline, as ``ece up``) and times both pipelines
   from their first output to their sentinels: ``market_data`` until every bucket's
   sentinel listing is in Redis, ``market_stats`` until the sentinel's window is on
   ``ece.market.stats``.

    uv run python bench/bench_market_stats.py [--events 200000] [--cards 2000]
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
import uuid
from collections import defaultdict
from typing import Any, cast

import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from bench.harness import throwaway_platform
from ece import kafka
from ece.contracts import market_data as md
from ece.contracts.realtime import iso_millis
from ece.contracts.topics import MARKET_ACTIVITY, MARKET_STATS
from streaming.jobs.market_data import BUCKETS, bucket_of, parse_input
from streaming.jobs.market_redis import HotSet
from streaming.jobs.market_state import CardMarket, on_activity
from streaming.jobs.market_windows import CardWindows

SPAN_MS = 3 * 3_600_000


def synthetic(n: int, cards: int, users: int, seed: int = 7) -> list[tuple[str, str]]:
    """(key, value) activity events, deterministic for a seed."""
    rng = random.Random(seed)
    card_ids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(cards)]
    user_ids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(users)]
    open_listings: dict[str, list[tuple[str, int]]] = defaultdict(list)
    auctions: dict[str, str] = {}
    base = int(time.time() * 1000) - SPAN_MS
    out: list[tuple[str, str]] = []
    for i in range(n):
        card = rng.choice(card_ids)
        roll = rng.random()
        event: dict[str, Any] = {"card_id": card, "user_id": rng.choice(user_ids),
                                 "counterparty_id": None, "price_cents": None,
                                 "set_name": f"set-{hash(card) % 20}",
                                 "rarity": ("common", "rare", "holo")[hash(card) % 3]}
        if roll < 0.30 and open_listings[card]:
            listing, price = open_listings[card].pop(0)
            event.update(type="sale", reference_id=listing, price_cents=price,
                         counterparty_id=rng.choice(user_ids))
        elif roll < 0.38 and open_listings[card]:
            listing, price = open_listings[card].pop()
            event.update(type="listing_cancelled", reference_id=listing, price_cents=price)
        elif roll < 0.43:
            auction = uuid.uuid4().hex
            auctions[card] = auction
            event.update(type="auction_started", reference_id=auction, price_cents=100)
        elif roll < 0.55 and card in auctions:
            event.update(type="bid", reference_id=auctions[card],
                         price_cents=100 + i % 10_000)
        elif roll < 0.57 and card in auctions:
            event.update(type="auction_ended", reference_id=auctions.pop(card))
        else:
            listing = uuid.uuid4().hex
            price = rng.randint(100, 100_000)
            open_listings[card].append((listing, price))
            event.update(type="listing_created", reference_id=listing, price_cents=price)
        event["event_id"] = f"{i:032x}"
        event["at"] = iso_millis(base + i * SPAN_MS // max(n, 1))
        out.append((card, json.dumps(event)))
    return out


def sentinels(base_ms: int) -> tuple[list[tuple[str, str]], list[str], str]:
    """One listing per writer bucket (market_data) and one old sale (market_stats)."""
    events: list[tuple[str, str]] = []
    listings: list[str] = []
    found: set[int] = set()
    while len(found) < BUCKETS:
        card = str(uuid.uuid4())
        if bucket_of(card) in found:
            continue
        found.add(bucket_of(card))
        listing = f"sentinel-{uuid.uuid4().hex}"
        listings.append(listing)
        events.append((card, json.dumps({
            "event_id": uuid.uuid4().hex, "type": "listing_created", "card_id": card,
            "user_id": "u", "counterparty_id": None, "price_cents": 1, "reference_id": listing,
            "set_name": "sentinel", "rarity": None, "at": iso_millis(base_ms)})))
    stats_card = f"sentinel-{uuid.uuid4().hex}"
    events.append((stats_card, json.dumps({
        "event_id": uuid.uuid4().hex, "type": "sale", "card_id": stats_card, "user_id": "u",
        "counterparty_id": "v", "price_cents": 1, "reference_id": "l", "set_name": None,
        "rarity": None, "at": iso_millis(base_ms)})))
    return events, listings, stats_card


def produce(bootstrap: str, events: list[tuple[str, str]]) -> float:
    queue: dict[str, Any] = {"queue.buffering.max.messages": 1_000_000}
    producer = Producer(kafka.producer_config(bootstrap, linger_ms=20, compression="lz4",
                                              **queue))
    started = time.perf_counter()
    for key, value in events:
        while True:
            try:
                producer.produce(MARKET_ACTIVITY, key=key, value=value, partition=0)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)
    return time.perf_counter() - started


def baseline(bootstrap: str, redis_url: str, total: int) -> float:
    """Same rules, same Redis batches, one Python consumer: seconds for ``total`` events."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    hot = HotSet(client)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "fetch.max.bytes": 50_000_000})
    consumer.assign([TopicPartition(MARKET_ACTIVITY, 0, 0)])
    cards: dict[str, CardMarket] = defaultdict(CardMarket)
    windows: dict[str, CardWindows] = defaultdict(CardWindows)
    seen = 0
    started = time.perf_counter()
    while seen < total:
        batch = consumer.consume(500, 1.0)
        commands, stats = [], client.pipeline(transaction=False)
        now = int(time.time() * 1000)
        for msg in batch:
            value = msg.value()
            if msg.error() or value is None:
                continue
            seen += 1
            parsed = parse_input(value.decode(), MARKET_ACTIVITY, "ece")
            if parsed is None:
                continue
            card_id, _, event = parsed
            commands.append(on_activity(cards[card_id], event))
            if event.type == "sale":
                w = windows[card_id]
                w.add(event.event_id, event.at_ms, event.price_cents, now)
                for figures in w.emit_due(now + 1_000):
                    stats.hset(f"bench:stats:{card_id}", str(figures["window_start"]),
                               json.dumps(figures))
        hot.apply(commands, now)
        stats.execute()
    elapsed = time.perf_counter() - started
    consumer.close()
    client.close()
    return elapsed


class StatsWatcher(threading.Thread):
    """Reads ece.market.stats from 0: time of the first record and of the sentinel's."""

    def __init__(self, bootstrap: str, card: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.card = bootstrap, card
        self.first: float | None = None
        self.done: float | None = None
        self.count = 0
        self.stop = False

    def run(self) -> None:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "enable.auto.commit": False,
                             "group.id": f"bench-{uuid.uuid4().hex}"})
        consumer.assign([TopicPartition(MARKET_STATS, 0, 0)])
        while not self.stop and self.done is None:
            for msg in consumer.consume(1000, 0.2):
                if msg.error() or msg.value() is None:
                    continue
                self.count += 1
                self.first = self.first or time.perf_counter()
                if msg.key() == self.card.encode():
                    self.done = time.perf_counter()
        consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000,
                        help="synthetic activity events (the issue asks 1000000)")
    parser.add_argument("--cards", type=int, default=2_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--timeout", type=float, default=1_800.0)
    args = parser.parse_args()

    print(f"generating {args.events:,} synthetic activity events "
          f"({args.cards:,} cards, {args.users:,} users)", flush=True)
    events = synthetic(args.events, args.cards, args.users)
    extra, listings, stats_card = sentinels(int(time.time() * 1000) - SPAN_MS)
    total = len(events) + len(extra)
    with throwaway_platform("broker", "redis") as platform:
        settings = platform.settings
        kafka.ensure_topics(settings, [MARKET_ACTIVITY, MARKET_STATS])
        seconds = produce(settings.kafka_bootstrap, events + extra)
        print(f"produced {total:,} events in {seconds:.1f}s", flush=True)

        base_s = baseline(settings.kafka_bootstrap, f"{settings.redis_url.rstrip('/')}/1", total)
        base_rate = total / base_s
        print(f"baseline (Python consumer, same rules, Redis db 1): {total:,} events in "
              f"{base_s:.1f}s = {base_rate:,.0f} events/s", flush=True)

        hot = redis.Redis.from_url(settings.redis_url)
        watcher = StatsWatcher(settings.kafka_bootstrap, stats_card)
        watcher.start()
        started = time.perf_counter()
        platform.require("flink")
        print(f"flink job running after {time.perf_counter() - started:.1f}s", flush=True)
        first_md: float | None = None
        md_done: float | None = None
        keys = [md.listings_key(md.card_scope(json.loads(v)["card_id"])) for _, v in extra[:-1]]
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and (md_done is None or watcher.done is None):
            if first_md is None and hot.exists(md.GENERATION_KEY) \
                    and cast(int, hot.dbsize()) > 2:
                first_md = time.perf_counter()
            if md_done is None and all(hot.zscore(k, listing) is not None
                                       for k, listing in zip(keys, listings, strict=True)):
                md_done = time.perf_counter()
            time.sleep(0.05)
        watcher.stop = True
        if md_done is None or watcher.done is None or first_md is None \
                or watcher.first is None:
            raise SystemExit("timed out before both pipelines reached their sentinels")
        md_s, stats_s = md_done - first_md, watcher.done - watcher.first
        print(f"market_data (Flink): {total:,} events in {md_s:.1f}s from its first write = "
              f"{total / md_s:,.0f} events/s", flush=True)
        print(f"market_stats (Flink): {total:,} events in {stats_s:.1f}s from its first window "
              f"= {total / stats_s:,.0f} events/s ({watcher.count:,} window records)",
              flush=True)
        both = max(md_done, watcher.done) - min(first_md, watcher.first)
        print(f"both pipelines together: {total / both:,.0f} events/s; ratio to the baseline: "
              f"{total / both / base_rate:.2f}x (market_data {total / md_s / base_rate:.2f}x, "
              f"market_stats {total / stats_s / base_rate:.2f}x)", flush=True)
        hot.close()


if __name__ == "__main__":
    main()
