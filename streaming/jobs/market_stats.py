"""Pipeline ``market_stats``: one-minute sale windows per card -> ``ece.market.stats``.

From ``ece.market.activity`` ``sale`` events, keyed by card: ``{card_id,
window_start, window_end, sales, volume_cents, last_price_cents, min_price_cents,
max_price_cents}`` per card and minute of event time (``at``). The rules are in
:mod:`streaming.jobs.market_windows`; this module wires them into the job.

Why the windows live in a ``KeyedProcessFunction`` and not in Flink's window
operator over source watermarks: a watermark with source idleness only stops an
idle split from holding the others back. When the whole market is quiet (every
split idle, or one partition and no new sale) the watermark never advances and
the last window would wait for the next sale, possibly for hours. Here each card
keeps its own event-time bookkeeping (watermark = newest ``at`` minus 5 s of
out-of-orderness, which is deterministic because a card's events arrive in commit
order on one partition) and every open window also holds a processing-time timer
at ``end + 10 s``: whichever comes first emits it, so a window is out at most 10 s
after it ends even on a silent topic. The wall clock only decides *when* a window
is sent, never its figures or whether an event is late (that is event time
against the card's watermark), so a replay yields the same figures; a window sent
by the deadline and then completed by a straggler is simply sent again, the
contract's upsert. Events more than 10 minutes behind the watermark go to
``ece.dlq`` with reason ``late``; malformed activity with reason ``malformed``.
Window state is checkpointed with the offsets, and dropped once it can no longer
change.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ece.contracts.change_event import MalformedEvent
from ece.contracts.dlq import dlq_value
from ece.contracts.topics import market_activity_topic, market_stats_topic
from streaming.jobs.market_events import parse_activity
from streaming.jobs.market_windows import LATE, LATENESS_MS, CardWindows, stats_value
from streaming.jobs.runtime import RELAXED_FETCH_WAIT_MS, JobContext, ensure_topics

NAME = "market_stats"


def _sale_type() -> Any:
    from pyflink.common import Types

    return Types.ROW_NAMED(["card_id", "event_id", "at_ms", "price_cents", "raw"],
                           [Types.STRING(), Types.STRING(), Types.LONG(), Types.LONG(),
                            Types.STRING()])


def build(ctx: JobContext) -> None:
    """source -> parse sales (bad ones to the DLQ) -> per-card windows -> stats topic."""
    from pyflink.common import Row, Types
    from pyflink.datastream import KeyedProcessFunction, OutputTag, ProcessFunction, RuntimeContext
    from pyflink.datastream.state import ValueStateDescriptor

    from streaming.jobs.dlq import dlq_row, keyed_type

    prefix = ctx.settings.topic_prefix
    source_topic = market_activity_topic(prefix)
    stats_topic = market_stats_topic(prefix)
    ensure_topics(ctx.settings, [stats_topic])
    dlq_tag = OutputTag(f"{NAME}_dlq", keyed_type())
    late_tag = OutputTag(f"{NAME}_late", keyed_type())

    class ParseSales(ProcessFunction):  # type: ignore[misc]
        def process_element(self, value: str, _ctx: Any) -> Iterator[Any]:
            try:
                event = parse_activity(value)
            except MalformedEvent as exc:
                yield dlq_tag, dlq_row(source_topic, NAME, value, str(exc))
                return
            if event is not None and event.type == "sale":
                assert event.price_cents is not None
                yield Row(event.card_id, event.event_id, event.at_ms, event.price_cents, value)

    class Windows(KeyedProcessFunction):  # type: ignore[misc]
        """A :class:`CardWindows` per card in keyed state; timers emit what is due."""

        def open(self, runtime_context: RuntimeContext) -> None:
            self.state = runtime_context.get_state(
                ValueStateDescriptor("windows", Types.PICKLED_BYTE_ARRAY()))

        def process_element(self, value: Any, ctx: Any) -> Iterator[Any]:
            windows = self.state.value() or CardWindows()
            now = ctx.timer_service().current_processing_time()
            verdict = windows.add(value[1], value[2], value[3], now)
            if verdict == LATE:
                error = (f"sale at {value[2]} ms is more than {LATENESS_MS // 60000} min behind "
                         f"the card's watermark {windows.watermark}")
                yield late_tag, Row(k=source_topic, v=dlq_value(source_topic, NAME, value[4],
                                                                error, reason="late"))
                return
            self.state.update(windows)
            due = windows.next_due()
            if due is not None:
                ctx.timer_service().register_processing_time_timer(due)

        def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
            windows = self.state.value()
            if windows is None:
                return
            card_id = ctx.get_current_key()
            now = ctx.timer_service().current_processing_time()
            for window in windows.emit_due(max(now, timestamp)):
                yield Row(k=card_id, v=stats_value(card_id, window))
            due = windows.next_due()
            if due is not None:
                ctx.timer_service().register_processing_time_timer(due)
            if windows.windows:
                self.state.update(windows)
            else:
                self.state.clear()

    sales = ctx.kafka_source(NAME, [source_topic], fetch_wait_ms=RELAXED_FETCH_WAIT_MS).process(
        ParseSales(), output_type=_sale_type()).uid(f"{NAME}-parse").name(f"{NAME}: parse")
    ctx.dlq(sales.get_side_output(dlq_tag), NAME)
    stats = (sales.key_by(lambda row: row[0], key_type=Types.STRING())
             .process(Windows(), output_type=keyed_type())
             .uid(f"{NAME}-windows").name(f"{NAME}: 1-minute windows"))
    ctx.dlq(stats.get_side_output(late_tag), NAME)
    ctx.keyed_sink(stats, stats_topic, NAME)
