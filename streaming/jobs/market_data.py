"""Pipeline ``market_data``: the Redis hot set of prices, listings, auctions, leaderboards.

Inputs: ``ece.market.activity`` (sales, listings, auctions, bids) and the CDC of
``cards`` (owners, for portfolios), ``card_valuations`` (the latest value per card)
and ``auctions`` (end times). Layout: :mod:`ece.contracts.market_data`.

One keyed operator, keyed by bucket (a card always maps to one bucket, so its
inputs stay in order). Per card (a map in keyed state), :mod:`streaming.jobs.market_state`
keeps what the card's next input needs (forward-only last sale, closed listings,
auction merge, owner by row version, valuation by ``at`` then id) and turns each
input into absolute, idempotent Redis commands. Per bucket, the commands are
buffered in checkpointed state and flushed as one pipeline every 50 ms, like
``card_cache`` (one operator rather than two saves a Python hop per event); after a
batch it recomputes the leaderboard scores of the users it touched
(:mod:`streaming.jobs.market_redis`). A processing-time tick refreshes READY_KEY
(once caught up) and every trader's 24-hour volume, so old sales roll off.

Rebuild: the sources and operators carry a *generation* (a number in
``<data_dir>/flink/market_data.generation``, bumped by ``ece rebuild-cache``) in
their consumer group and uids. A new generation (or a new broker epoch) has no
committed offsets and no restored state, so it reads every topic from the
beginning; its writer claims the hot set (wiping what any other generation left,
:func:`streaming.jobs.market_redis.claim`) before its first write.
"""

from __future__ import annotations

import json
import logging
import os
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ece import kafka
from ece.contracts import market_data as md
from ece.contracts.change_event import MalformedEvent, malformed_on_shape_errors
from ece.contracts.topics import cdc_topic, market_activity_topic
from ece.settings import Settings
from streaming.jobs import market_state as rules
from streaming.jobs.market_events import (
    AuctionRow,
    CardRow,
    ValuationRow,
    parse_activity,
    parse_cdc,
)
from streaming.jobs.market_redis import HotSet, claim, decode, encode, still_owned
from streaming.jobs.runtime import RELAXED_FETCH_WAIT_MS, JobContext

NAME = "market_data"
CDC_TABLES = ("cards", "card_valuations", "auctions")
BUCKETS = 8
FLUSH_MS = 50  # a sale must show within 5 s; bigger batches share leaderboard recomputes
MAX_BATCH = 2000
TICK_MS = 2_000  # READY refresh
REFRESH_MS = 30_000  # traders recomputed, day-old sales pruned
CAUGHT_UP_LAG_MS = 10_000  # an input this close to now means we are live
IDLE_MS = 5_000  # ... or no input for this long (after STARTUP_MS)
STARTUP_MS = 30_000

log = logging.getLogger(__name__)


def generation_path(settings: Settings) -> Path:
    return settings.data_dir / "flink" / f"{NAME}.generation"


def read_generation(settings: Settings) -> int:
    try:
        return int(generation_path(settings).read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def bump_generation(settings: Settings) -> int:
    """Next generation, written atomically; the next job start re-reads everything."""
    path = generation_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    value = read_generation(settings) + 1
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{value}\n")
    os.replace(tmp, path)
    return value


def pipeline_name(generation: int) -> str:
    """Consumer group and uid stem: a new generation starts with nothing restored."""
    return NAME if generation == 0 else f"{NAME}_g{generation}"


def bucket_of(card_id: str) -> int:
    return zlib.crc32(card_id.encode()) % BUCKETS


def classify(raw: str, activity_topic: str, prefix: str) -> tuple[str, str | None]:
    """(source topic, CDC table or None for activity) of a message from the one source."""
    try:
        event = json.loads(raw)
    except ValueError:
        return activity_topic, None
    if isinstance(event, dict) and "op" in event and isinstance(event.get("source"), dict):
        table = event["source"].get("table")
        if table in CDC_TABLES:
            return cdc_topic(table, prefix), table
    return activity_topic, None


@malformed_on_shape_errors
def parse_input(raw: str | None, activity_topic: str, prefix: str
                ) -> tuple[str, int, Any] | None:
    """(card id, event time ms, parsed input) of one message; None if it changes nothing
    (a tombstone after a delete reaches Python as None)."""
    if raw is None:
        return None
    _, table = classify(raw, activity_topic, prefix)
    if table is None:
        event = parse_activity(raw)
        return None if event is None else (event.card_id, event.at_ms, event)
    row = parse_cdc(table, raw)
    if row is None:
        return None
    moment = json.loads(raw).get("source", {}).get("ts_ms")
    return row.card_id, int(moment) if isinstance(moment, int) else 0, row


def caught_up(now_ms: int, opened_ms: int, inputs: dict[str, tuple[int, int]]) -> bool:
    """Is the writer live on *every* input it reads (then the hot set may be declared ready)?

    ``inputs``: per input (activity, cards, valuations, auctions) the processing time of
    its last message and that message's lag. An input is live when its last message was
    at most ``CAUGHT_UP_LAG_MS`` old, or when it has been quiet for ``IDLE_MS`` (after
    ``STARTUP_MS``: a topic still replaying delivers without pauses). One input live is
    not enough: a rebuild reads its four topics side by side, and the cards topic can
    reach the present while the activity topic is still far behind, which declared a
    half-built hot set ready (CI: the rebuild test's hot set kept differing for 60 s).
    """
    settled = opened_ms + STARTUP_MS
    if not inputs:
        return now_ms - settled >= IDLE_MS
    return all(lag <= CAUGHT_UP_LAG_MS or now_ms - max(seen, settled) >= IDLE_MS
               for seen, lag in inputs.values())


def apply_input(state: rules.CardMarket, item: Any) -> list[rules.Command]:
    if isinstance(item, CardRow):
        return rules.on_card_row(state, item)
    if isinstance(item, ValuationRow):
        return rules.on_valuation_row(state, item)
    if isinstance(item, AuctionRow):
        return rules.on_auction_row(state, item)
    return rules.on_activity(state, item)


def resuming(settings: Settings, group: str) -> bool:
    """Has this consumer group committed offsets (then we continue, not rebuild)?"""
    from confluent_kafka import ConsumerGroupTopicPartitions

    try:
        futures = kafka.admin(settings).list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)])
        partitions = next(iter(futures.values())).result(10).topic_partitions or []
    except Exception:  # noqa: BLE001 - an unknown group: nothing committed
        return False
    return any(tp.offset >= 0 for tp in partitions)


def build(ctx: JobContext) -> None:
    """source (activity + 3 CDC topics) -> per-card rules -> per-bucket buffered writer."""
    from pyflink.common import Row, Types
    from pyflink.datastream import KeyedProcessFunction, OutputTag, ProcessFunction, RuntimeContext
    from pyflink.datastream.state import ListStateDescriptor, MapStateDescriptor

    from streaming.jobs.dlq import dlq_row, keyed_type

    prefix = ctx.settings.topic_prefix
    activity_topic = market_activity_topic(prefix)
    # card_cache reports malformed card changes: one bad message, one DLQ record.
    reported_elsewhere = {ctx.cdc_topic("cards")}
    generation = read_generation(ctx.settings)
    name = pipeline_name(generation)
    owner = f"{generation}:{ctx.epoch}"
    may_claim = not resuming(ctx.settings, ctx.group_id(name))
    redis_url = ctx.settings.redis_url
    item_type = Types.ROW_NAMED(["bucket", "card_id", "at_ms", "item"],
                                [Types.INT(), Types.STRING(), Types.LONG(),
                                 Types.PICKLED_BYTE_ARRAY()])
    log.info("%s generation %s (owner %s, %s)", NAME, generation, owner,
             "may claim" if may_claim else "resuming")

    class Parse(ProcessFunction):  # type: ignore[misc]
        """One per source topic, so a bad message is reported against its own topic."""

        def __init__(self, topic: str, dlq_tag: Any) -> None:
            super().__init__()
            self.topic, self.dlq_tag = topic, dlq_tag

        def process_element(self, value: str | None, _ctx: Any) -> Iterator[Any]:
            try:
                parsed = parse_input(value, activity_topic, prefix)
            except MalformedEvent as exc:
                if self.topic not in reported_elsewhere:
                    yield self.dlq_tag, dlq_row(self.topic, NAME, value, str(exc))
                return
            if parsed is not None:
                yield Row(bucket_of(parsed[0]), *parsed)

    class Writer(KeyedProcessFunction):  # type: ignore[misc]
        """Per card: the rules' state (a map in keyed state). Per bucket: the command
        batches, buffered in checkpointed state and flushed as one pipeline."""

        def open(self, runtime_context: RuntimeContext) -> None:
            import redis

            self.client = redis.Redis.from_url(redis_url, socket_timeout=10,
                                               health_check_interval=30)
            self.hot = HotSet(self.client)
            self.owned = claim(self.client, owner, may_claim)
            if not self.owned:
                log.error("the hot set is not ours (wiped or rebuilt elsewhere): it stays not "
                          "ready until `ece rebuild-cache`")
            self.buffer = runtime_context.get_list_state(
                ListStateDescriptor("pending", Types.STRING()))
            self.cards = runtime_context.get_map_state(
                MapStateDescriptor("cards", Types.STRING(), Types.PICKLED_BYTE_ARRAY()))
            self.ticking: set[int] = set()  # timers are checkpointed; aligned ticks coincide
            self.counts: dict[int, int] = {}
            self.opened_ms = int(time.time() * 1000)
            self.inputs: dict[str, tuple[int, int]] = {}  # see caught_up()
            self.caught_up = False
            self.last_tick_ms = -1
            self.last_refresh_ms = -1

        def close(self) -> None:
            self.client.close()

        def process_element(self, value: Any, ctx: Any) -> Iterable[Any]:
            timers = ctx.timer_service()
            now = timers.current_processing_time()
            self.inputs[type(value[3]).__name__] = (now, now - value[2])
            key = ctx.get_current_key()
            if key not in self.ticking:
                self.ticking.add(key)
                timers.register_processing_time_timer(now - now % TICK_MS + TICK_MS)
            state = self.cards.get(value[1]) or rules.CardMarket()
            commands = apply_input(state, value[3])
            self.cards.put(value[1], state)
            if not commands:
                return []
            self.buffer.add(encode(commands))
            count = self.counts.get(key, 0) + 1
            if count >= MAX_BATCH:
                self._flush(key, now)
                return []
            if count == 1:
                timers.register_processing_time_timer(now + FLUSH_MS)
            self.counts[key] = count
            return []

        def on_timer(self, timestamp: int, ctx: Any) -> Iterable[Any]:
            now = ctx.timer_service().current_processing_time()
            self._flush(ctx.get_current_key(), now)
            if timestamp % TICK_MS == 0:
                ctx.timer_service().register_processing_time_timer(timestamp + TICK_MS)
                self._tick(now)
            return []

        def _flush(self, key: int, now: int) -> None:
            batches = [decode(text) for text in (self.buffer.get() or [])]
            self.counts.pop(key, None)
            if batches:
                self.hot.apply(batches, now)  # raises on a Redis error: restart from checkpoint
                self.buffer.clear()

        def _tick(self, now: int) -> None:
            """Once per subtask per tick (every bucket has the same timers)."""
            if now - self.last_tick_ms < TICK_MS // 2:
                return
            self.last_tick_ms = now
            if not self.caught_up:
                self.caught_up = caught_up(now, self.opened_ms, self.inputs)
            if self.owned and self.caught_up and still_owned(self.client, owner):
                self.client.set(md.READY_KEY, "1", ex=md.READY_TTL_S)
            if now - self.last_refresh_ms >= REFRESH_MS:
                self.last_refresh_ms = now
                self.hot.refresh(now)

    sources = {"activity": activity_topic, **{t: ctx.cdc_topic(t) for t in CDC_TABLES}}
    streams = []
    for label, topic in sources.items():
        # A fresh tag per operator: a tag used by get_side_output holds a Java object and
        # can no longer be pickled into the next function.
        dlq_tag = OutputTag(f"{NAME}_{label}_dlq", keyed_type())
        stream = (ctx.kafka_source(name, [topic], uid=f"{name}-{label}-source",
                                  fetch_wait_ms=RELAXED_FETCH_WAIT_MS)
                  .process(Parse(topic, dlq_tag), output_type=item_type)
                  .uid(f"{name}-{label}-parse").name(f"{NAME}: parse {label}"))
        ctx.dlq(stream.get_side_output(dlq_tag), NAME)
        streams.append(stream)
    parsed = streams[0].union(*streams[1:])
    (parsed.key_by(lambda row: row[0], key_type=Types.INT())
     .process(Writer()).uid(f"{name}-redis").name(f"{NAME}: rules -> redis hot set"))
