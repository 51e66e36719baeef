"""Dead letters inside a Flink job: the record format is :mod:`ece.contracts.dlq`."""

from __future__ import annotations

from typing import Any

from ece.contracts.dlq import dlq_value


def dlq_row(source_topic: str, pipeline: str, payload: str | None, error: str) -> Any:
    """A ``Row(k, v)`` for :meth:`JobContext.dlq`."""
    from pyflink.common import Row

    return Row(k=source_topic, v=dlq_value(source_topic, pipeline, payload, error))


def keyed_type() -> Any:
    from pyflink.common import Types

    return Types.ROW_NAMED(["k", "v"], [Types.STRING(), Types.STRING()])
