"""Dead-letter records: what a pipeline or worker could not process, with the reason.

Never drop a malformed event silently: it goes to the DLQ topic
(:func:`ece.contracts.topics.dlq_topic`) keyed by its source topic, carrying the raw
payload so it can be inspected and replayed once fixed. The stream jobs and the
API's workers write this same format.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

# Why a record is here: ``malformed`` (could not be parsed or checked) or ``late`` (a
# sale more than 10 minutes behind its card's watermark in ``market_stats``).
REASONS = ("malformed", "late")


def dlq_value(source_topic: str, pipeline: str, payload: str | None, error: str,
              reason: str | None = "malformed") -> str:
    """The record's value (JSON); its key is ``source_topic``."""
    return json.dumps(
        {
            "source_topic": source_topic,
            "pipeline": pipeline,
            "error": error,
            "reason": reason,
            "payload": payload,
            "failed_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        },
        separators=(",", ":"),
    )
