"""The CDC inputs of the real-time pipelines, built once per job and shared.

``market_activity`` and ``notifications`` read nine tables between them, some of
them both. Each table gets exactly one Kafka source and one checking step
(:func:`streaming.jobs.cdc_rows.parse`), whichever pipeline asks first; the other
gets the same stream. So a malformed message makes one DLQ record (not one per
reader), the broker serves each topic once, and the two pipelines see each change
in the same order.

The tables a pipeline asks for first come through one Kafka source that carries
each record's topic (:meth:`JobContext.kafka_topics_source`): one consumer fetching
rather than one per table, and the DLQ record still names the topic.

Every stream here carries ``Row(key, table, raw, name)``: the key the next step
groups by (a card id for card tables), the source table, the message as read, and
(only on the enriched stream of :mod:`market_activity`) the card's name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from ece.contracts.change_event import MalformedEvent
from streaming.jobs.cdc_rows import parse
from streaming.jobs.runtime import JobContext

TAGGED_FIELDS = ["key", "table", "raw", "name"]
# Tables whose malformed messages another pipeline already reports: one bad message
# makes one DLQ record, not one per reader (card_cache needs every card change).
REPORTED_BY = {"cards": "card_cache"}
log = logging.getLogger(__name__)

_CACHE = "_realtime_parsed"  # attribute on the JobContext holding the built streams


def tagged_type() -> Any:
    from pyflink.common import Types

    return Types.ROW_NAMED(TAGGED_FIELDS, [Types.STRING()] * len(TAGGED_FIELDS))


def _dlq_tag() -> Any:
    from pyflink.datastream import OutputTag

    from streaming.jobs.dlq import keyed_type

    return OutputTag("realtime_dlq", keyed_type())


def shared(ctx: JobContext, name: str) -> dict[str, Any]:
    """A per-job cache for streams that several pipelines use (lives on the context)."""
    cache: dict[str, Any] = vars(ctx).setdefault(name, {})
    return cache


def parsed_streams(ctx: JobContext, pipeline: str, tables: Sequence[str]) -> dict[str, Any]:
    """``{table: stream of Row(key, table, raw, None)}``, checked; malformed ones to the DLQ.

    The tables not built yet are read through one Kafka source (one consumer, group
    ``realtime_<pipeline>``) and checked by one step that routes each change to its
    table's side output. The DLQ records of the tables first built here name
    ``pipeline``.
    """
    from pyflink.common import Row
    from pyflink.datastream import OutputTag, ProcessFunction

    from streaming.jobs.dlq import dlq_row

    cache = shared(ctx, _CACHE)
    new = [t for t in dict.fromkeys(tables) if t not in cache]
    if new:
        # Fresh tags for this operator: a tag used by get_side_output holds a Java object
        # and can no longer be pickled into the next function.
        outputs = {t: OutputTag(f"realtime_{t}", tagged_type()) for t in new}
        dlq_tag = _dlq_tag()
        table_of = {ctx.cdc_topic(t): t for t in new}

        class CheckChanges(ProcessFunction):  # type: ignore[misc]
            def process_element(self, value: Any, _ctx: Any) -> Iterator[Any]:
                topic, raw = value[0], value[1]
                table = table_of[topic]
                try:
                    change = parse(table, raw)
                except MalformedEvent as exc:
                    if table in REPORTED_BY:
                        log.debug("skipping malformed %s message (%s reports it): %s",
                                  topic, REPORTED_BY[table], exc)
                    else:
                        yield dlq_tag, dlq_row(topic, pipeline, raw, str(exc))
                    return
                if change is not None:
                    yield outputs[table], Row(change.key, table, raw, None)

        checked = (ctx.kafka_topics_source(f"realtime_{pipeline}", list(table_of))
                   .process(CheckChanges(), output_type=tagged_type())
                   .uid(f"realtime-check-{pipeline}").name(f"realtime: check {', '.join(new)}"))
        for table, tag in outputs.items():
            cache[table] = checked.get_side_output(tag)
        ctx.dlq(checked.get_side_output(dlq_tag), pipeline)
    return {table: cache[table] for table in tables}
