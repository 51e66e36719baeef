"""Worker failures to the DLQ topic, in the same format as the stream jobs' DLQ."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from confluent_kafka import Producer

from ece import kafka
from ece.contracts.dlq import dlq_value
from ece.contracts.topics import dlq_topic
from ece.settings import Settings

log = structlog.get_logger("api.nfts.runtime")


class DeadLetters:
    """Producer for the DLQ topic: ``key = source topic``, value as :mod:`ece.contracts.dlq`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = dlq_topic(settings.topic_prefix)
        self._producer: Producer | None = None

    def _create_topic(self) -> None:
        kafka.ensure_topics(self.settings, [self.topic], timeout=10)

    async def start(self) -> None:
        """Create the DLQ topic if missing (best effort: a broker that is down gets it later)."""
        try:
            await asyncio.to_thread(self._create_topic)
        except Exception as exc:  # noqa: BLE001 - the worker must start without the broker
            log.warning("dlq_topic_not_created", error=str(exc))

    def _ensure(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(kafka.producer_config(
                self.settings, linger_ms=5, message_timeout_ms=60_000, compression=None))
        return self._producer

    def publish(self, source_topic: str, pipeline: str, payload: str | None, error: str) -> None:
        """Queue one dead letter; delivery failures are logged loudly (the DB keeps the error)."""

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                log.error("dlq_delivery_failed", source_topic=source_topic, error=str(err))

        try:
            producer = self._ensure()
            producer.produce(
                self.topic,
                key=source_topic.encode(),
                value=dlq_value(source_topic, pipeline, payload, error).encode(),
                on_delivery=delivered,
            )
            producer.poll(0)
        except Exception as exc:  # noqa: BLE001 - the failure itself is already in Postgres
            log.error("dlq_publish_failed", source_topic=source_topic, error=str(exc))

    async def flush(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        if self._producer is not None:
            await asyncio.to_thread(self._producer.flush, timeout)
