"""The Kafka side of CDC: topics, the broker epoch (cluster id) and producer settings."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from ece.contracts.topics import CAPTURED_TABLES, cdc_topic
from ece.settings import Settings


def captured_topics(settings: Settings) -> list[str]:
    return [cdc_topic(t, settings.topic_prefix) for t in CAPTURED_TABLES]


def admin(settings: Settings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.kafka_bootstrap})


def cluster_id(settings: Settings, timeout: float = 5.0) -> str:
    """The broker's cluster id.

    The local broker keeps topics in memory and gets a new id on every start, so the
    id names an *epoch*: a new one means every topic is empty and must be refilled.
    """
    meta = admin(settings).list_topics(timeout=timeout)
    if not meta.cluster_id:
        raise RuntimeError(f"broker {settings.kafka_bootstrap} reported no cluster id")
    return str(meta.cluster_id)


def ensure_topics(settings: Settings, partitions: int, timeout: float = 15.0) -> list[str]:
    """Create every captured table's topic that does not exist yet; return the created ones.

    Created up front so consumers can subscribe before the first change and so a
    broker without auto-creation still works.
    """
    client = admin(settings)
    existing = set(client.list_topics(timeout=timeout).topics)
    missing = [t for t in captured_topics(settings) if t not in existing]
    if not missing:
        return []
    futures = client.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=-1) for t in missing],
        request_timeout=timeout,
    )
    for topic, future in futures.items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc) and "already exists" not in str(exc):
                raise
            _ = topic
    return missing


def producer_config(settings: Settings, message_timeout_ms: int) -> dict[str, Any]:
    """Idempotent, acks=all: a retried send never duplicates or reorders within a partition."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 1,
        "compression.type": "lz4",
        # Bounded, so a dead broker fails the batch (and the engine retries it) in
        # seconds instead of blocking flush() for librdkafka's default 5 minutes.
        "message.timeout.ms": message_timeout_ms,
        "queue.buffering.max.messages": 200_000,
    }
