"""Dead-letter records: what a pipeline could not process, with the reason.

Never drop a malformed event silently: it goes to ``ece.dlq`` keyed by its source
topic, carrying the raw payload so it can be inspected and replayed once fixed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def dlq_value(source_topic: str, pipeline: str, payload: str | None, error: str) -> str:
    return json.dumps(
        {
            "source_topic": source_topic,
            "pipeline": pipeline,
            "error": error,
            "payload": payload,
            "failed_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        },
        separators=(",", ":"),
    )


def dlq_row(source_topic: str, pipeline: str, payload: str | None, error: str) -> Any:
    """A ``Row(k, v)`` for :meth:`JobContext.dlq`."""
    from pyflink.common import Row

    return Row(k=source_topic, v=dlq_value(source_topic, pipeline, payload, error))


def keyed_type() -> Any:
    from pyflink.common import Types

    return Types.ROW_NAMED(["k", "v"], [Types.STRING(), Types.STRING()])
