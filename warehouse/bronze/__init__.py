"""Bronze: raw CDC events landed from Kafka into ``ece.bronze.<table>``, exactly once.

See :mod:`warehouse.bronze.landing` for the consume/commit loop,
:mod:`warehouse.bronze.envelope` for how one Debezium message becomes one row and
:mod:`warehouse.bronze.offsets` for the progress table committed with the rows.
"""

from warehouse.bronze.landing import LandingConfig, TopicReport, land, pending_topics

__all__ = ["LandingConfig", "TopicReport", "land", "pending_topics"]
