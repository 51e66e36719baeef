"""The CDC inputs of the real-time pipelines, built once per job and shared.

``market_activity`` and ``notifications`` read nine tables between them, some of
them both. Each table gets exactly one Kafka source and one checking step
(:func:`streaming.jobs.cdc_rows.parse`), whichever pipeline asks first; the other
gets the same stream. So a malformed message makes one DLQ record (not one per
reader), the broker serves each topic once, and the two pipelines see each change
in the same order.

One source per topic rather than one for all: the value-only Kafka source does
not say which topic a record came from, and a DLQ record must name it.

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
from streaming.jobs.runtime import ACTIVITY_FETCH_WAIT_MS, JobContext

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

    The DLQ records of the tables first built here name ``pipeline``.
    """
    from pyflink.common import Row
    from pyflink.datastream import ProcessFunction

    from streaming.jobs.dlq import dlq_row

    cache = shared(ctx, _CACHE)
    failures = []

    class CheckChanges(ProcessFunction):  # type: ignore[misc]
        def __init__(self, topic: str, table: str, dlq_tag: Any) -> None:
            super().__init__()
            self.topic, self.table, self.dlq_tag = topic, table, dlq_tag

        def process_element(self, value: str, _ctx: Any) -> Iterator[Any]:
            try:
                change = parse(self.table, value)
            except MalformedEvent as exc:
                if self.table in REPORTED_BY:
                    log.debug("skipping malformed %s message (%s reports it): %s",
                              self.topic, REPORTED_BY[self.table], exc)
                else:
                    yield self.dlq_tag, dlq_row(self.topic, pipeline, value, str(exc))
                return
            if change is not None:
                yield Row(change.key, self.table, value, None)

    for table in tables:
        if table in cache:
            continue
        topic = ctx.cdc_topic(table)
        # A fresh tag per operator: a tag used by get_side_output holds a Java object and
        # can no longer be pickled into the next function.
        dlq_tag = _dlq_tag()
        stream = (ctx.kafka_source(f"realtime_{table}", [topic],
                                   fetch_wait_ms=ACTIVITY_FETCH_WAIT_MS)
                  .process(CheckChanges(topic, table, dlq_tag), output_type=tagged_type())
                  .uid(f"realtime-check-{table}").name(f"realtime: check {table}"))
        cache[table] = stream
        failures.append(stream.get_side_output(dlq_tag))
    if failures:
        ctx.dlq(failures[0].union(*failures[1:]) if len(failures) > 1 else failures[0],
                pipeline)
    return {table: cache[table] for table in tables}
