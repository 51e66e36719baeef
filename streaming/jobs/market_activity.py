"""Pipeline ``market_activity``: business events from CDC, to ``ece.market.activity``.

Six tables (cards, listings, sales, auctions, card_history, nfts) are checked
(:mod:`streaming.jobs.realtime_sources`), keyed by card and fed to one keyed
function, :class:`CardActivity` below, that

- keeps the card's name, set, rarity and owner from its own change stream;
- turns each change into 0..2 activity events (:mod:`streaming.jobs.activity_rules`)
  and writes them, key ``card_id``, in the order the changes reached it;
- holds back the events of a card it has not seen yet (keyed state + a
  processing-time timer): they go out as soon as the card arrives, or after
  ``CARD_WAIT_MS`` with null set/rarity, never lost.

The same function also feeds ``notifications`` (:func:`activity_streams`): a side
output carries every activity event and every auction and card_history change
with the card's name, per card in the same order. Sharing the in-job stream
instead of re-reading the topic saves a Kafka round trip (sink linger, fetch wait,
one more (de)serialisation) on the way to a user's socket, and it gives the
notification rules the name that the activity topic does not carry.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ece.contracts.topics import market_activity_topic
from streaming.jobs import realtime_sources
from streaming.jobs.activity_rules import CardInfo, activity_events, dumps
from streaming.jobs.cdc_rows import parse
from streaming.jobs.runtime import JobContext, ensure_topics

NAME = "market_activity"
TABLES = ("cards", "listings", "sales", "auctions", "card_history", "nfts")
FORWARDED = ("auctions", "card_history")  # raw changes the notification rules read
CARD_WAIT_MS = 3_000  # how long an event waits for its card's first row
_CACHE = "_market_activity"


@dataclass(frozen=True)
class ActivityStreams:
    """``activity``: ``Row(k, v)`` for the topic; ``enriched``: ``Row(key, table, raw, name)``
    with table ``activity`` (raw = the event JSON) or a forwarded table (raw = the message)."""

    activity: Any
    enriched: Any


def _enriched_tag() -> Any:
    from pyflink.datastream import OutputTag

    return OutputTag("market_activity_enriched", realtime_sources.tagged_type())


def activity_streams(ctx: JobContext) -> ActivityStreams:
    """Build the keyed activity step once per job and return its two outputs."""
    cache = realtime_sources.shared(ctx, _CACHE)
    if "streams" in cache:
        streams: ActivityStreams = cache["streams"]
        return streams

    from pyflink.common import Row, Types
    from pyflink.datastream import KeyedProcessFunction, RuntimeContext
    from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

    from streaming.jobs.dlq import keyed_type

    enriched_tag = _enriched_tag()

    class CardActivity(KeyedProcessFunction):  # type: ignore[misc]
        """Card state + activity rules, per card in arrival order (see the module doc)."""

        def open(self, runtime_context: RuntimeContext) -> None:
            self.card = runtime_context.get_state(ValueStateDescriptor("card", Types.STRING()))
            self.pending = runtime_context.get_list_state(
                ListStateDescriptor("pending", Types.STRING()))
            self.timer = runtime_context.get_state(
                ValueStateDescriptor("pending_timer", Types.LONG()))

        def process_element(self, value: Any, ctx: Any) -> Iterator[Any]:
            table, raw = value[1], value[2]
            if table == "cards":
                change = parse(table, raw)
                if change is None:
                    return
                if change.op == "d":
                    self.card.clear()
                    return
                self.card.update(CardInfo.from_row(change.row).dumps())
                yield from self._flush(ctx)
                return
            if self.card.value() is None or self.timer.value() is not None:
                self.pending.add(f"{table}|{raw}")
                if self.timer.value() is None:
                    due = ctx.timer_service().current_processing_time() + CARD_WAIT_MS
                    ctx.timer_service().register_processing_time_timer(due)
                    self.timer.update(due)
                return
            yield from self._emit(ctx.get_current_key(), table, raw,
                                  CardInfo.loads(self.card.value()))

        def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
            if self.timer.value() == timestamp:
                yield from self._flush(ctx)

        def _flush(self, ctx: Any) -> Iterator[Any]:
            due = self.timer.value()
            if due is None:
                return
            held = list(self.pending.get() or [])
            self.pending.clear()
            self.timer.clear()
            card = CardInfo.loads(self.card.value())
            key = ctx.get_current_key()
            for item in held:
                table, _, raw = item.partition("|")
                yield from self._emit(key, table, raw, card)

        def _emit(self, card_id: str, table: str, raw: str,
                  card: CardInfo | None) -> Iterator[Any]:
            change = parse(table, raw)
            if change is None:
                return
            name = card.name if card else None
            for event in activity_events(change, card):
                text = dumps(event)
                yield Row(k=card_id, v=text)
                yield enriched_tag, Row(card_id, "activity", text, name)
            if table in FORWARDED:
                yield enriched_tag, Row(card_id, table, raw, name)

    parsed = realtime_sources.parsed_streams(ctx, NAME, TABLES)
    first, *rest = (parsed[t] for t in TABLES)
    activity = (first.union(*rest)
                .key_by(lambda row: row[0], key_type=Types.STRING())
                .process(CardActivity(), output_type=keyed_type())
                .uid(f"{NAME}-by-card").name(f"{NAME}: card state + rules"))
    streams = ActivityStreams(activity=activity,
                              enriched=activity.get_side_output(enriched_tag))
    cache["streams"] = streams
    return streams


def build(ctx: JobContext) -> None:
    """CDC (6 tables) -> check -> key by card -> card state + rules -> ece.market.activity."""
    topic = market_activity_topic(ctx.settings.topic_prefix)
    ensure_topics(ctx.settings, [topic])
    ctx.keyed_sink(activity_streams(ctx).activity, topic, NAME)

