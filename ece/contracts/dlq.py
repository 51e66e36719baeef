"""Dead-letter records: what a pipeline or worker could not process, with the reason.

Never drop a malformed event silently: it goes to the DLQ topic
(:func:`ece.contracts.topics.dlq_topic`) keyed by its source topic, carrying the raw
payload so it can be inspected and replayed once fixed. The stream jobs, the API's
workers and the bronze landing write this same format.

Fields are the event contract's ``{source_topic, partition, offset, key, value,
error, reason, job, at}`` (``partition``/``offset``/``key`` are null where the
writer does not see them: a Flink operator gets the value only). ``pipeline``,
``payload`` and ``failed_at`` repeat ``job``, ``value`` and ``at`` for the readers
written before the contract named them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

# Why a record is here: ``malformed`` (could not be parsed or checked) or ``late`` (a
# sale more than 10 minutes behind its card's watermark in ``market_stats``) or
# ``invalid`` (not a Debezium change event, seen by the bronze landing).
REASONS = ("malformed", "late", "invalid")


def dlq_value(source_topic: str, pipeline: str, payload: str | None, error: str,
              reason: str | None = "malformed", *, partition: int | None = None,
              offset: int | None = None, key: str | None = None) -> str:
    """The record's value (JSON); its key is ``source_topic``."""
    at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps(
        {
            "source_topic": source_topic,
            "partition": partition,
            "offset": offset,
            "key": key,
            "value": payload,
            "error": error,
            "reason": reason,
            "job": pipeline,
            "at": at,
            "pipeline": pipeline,
            "payload": payload,
            "failed_at": at,
        },
        separators=(",", ":"),
    )
