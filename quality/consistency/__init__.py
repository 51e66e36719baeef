"""Consistency across stores: PostgreSQL against the lake, Redis and the chain.

One module per comparison (``lake``, ``cdc``, ``cards``, ``market``, ``chain``),
``capture`` for the race-free read of PostgreSQL, the lake and the CDC topics,
``runner`` to run them and ``table`` to show the report. Used by ``ece check``
and the Dagster asset ``quality/consistency`` (docs/consistency.md).
"""
