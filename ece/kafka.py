"""Kafka for every ECE process: admin client, broker epoch, topics, client configs.

The local broker (Tansu, memory storage) starts empty with a fresh cluster id each
time, so the cluster id names an *epoch*: consumers key their group ids by it and
the CDC runner refills the topics when it changes. Against a real Kafka cluster
the id never changes. Every workaround for that broker lives here, with its knobs
in :class:`ece.settings.Settings` (``kafka_*``):

* a group join waits half the session timeout -> ``kafka_session_timeout_ms`` short,
  heartbeats every ``kafka_heartbeat_interval_ms``;
* an idempotent producer's InitProducerId costs ~1 s -> short-lived producers of
  latest-state records may pass ``idempotent=False``;
* "latest" offsets are unreliable -> consumers that must see every change start
  from ``earliest``;
* topics created after a consumer subscribed are found by refreshing metadata every
  ``kafka_metadata_refresh_ms``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from ece.settings import Settings

Target = Settings | str  # a settings object or a bootstrap address


def bootstrap_of(target: Target) -> str:
    return target.kafka_bootstrap if isinstance(target, Settings) else target


def admin(target: Target, **extra: Any) -> AdminClient:
    """An admin client for the configured broker (``extra``: librdkafka options)."""
    return AdminClient({"bootstrap.servers": bootstrap_of(target), **extra})


def epoch_of(metadata: Any) -> str:
    """The cluster id in a ``list_topics()`` answer; raises if the broker sent none."""
    if not metadata.cluster_id:
        raise RuntimeError(f"broker {metadata.orig_broker_name} reported no cluster id")
    return str(metadata.cluster_id)


def cluster_id(target: Target, timeout: float = 5.0) -> str:
    """The broker's cluster id: the epoch every consumer keys its progress by."""
    return epoch_of(admin(target).list_topics(timeout=timeout))


def cluster_id_or_none(target: Target, timeout: float = 2.0) -> str | None:
    """:func:`cluster_id`, or None while the broker is unreachable."""
    try:
        return cluster_id(target, timeout)
    except Exception:  # noqa: BLE001 - any client error means "not reachable now"
        return None


def already_exists(exc: BaseException) -> bool:
    """A create-topic failure that only says a concurrent creator was first."""
    message = str(exc).upper()
    return "TOPIC_ALREADY_EXISTS" in message or "ALREADY EXIST" in message


def ensure_topics(target: Target, names: Iterable[str], *, partitions: int = 1,
                  timeout: float = 15.0) -> list[str]:
    """Create each of ``names`` that does not exist yet; return the ones created.

    Replication is the broker's default (``-1``). A topic created concurrently by
    another process counts as existing.
    """
    client = admin(target)
    existing = set(client.list_topics(timeout=timeout).topics)
    missing = [n for n in dict.fromkeys(names) if n not in existing]
    if not missing:
        return []
    futures = client.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=-1) for n in missing],
        request_timeout=timeout,
    )
    for future in futures.values():
        try:
            future.result(timeout)
        except KafkaException as exc:
            if not already_exists(exc):
                raise
    return missing


def producer_config(target: Target, *, idempotent: bool = True, linger_ms: int = 5,
                    message_timeout_ms: int = 60_000, compression: str | None = "lz4",
                    **extra: Any) -> dict[str, Any]:
    """acks=all; idempotent unless asked (a retried send then never duplicates or
    reorders within a partition). ``message_timeout_ms`` bounds how long a dead
    broker can block ``flush()`` (librdkafka's default is 5 minutes)."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_of(target),
        "enable.idempotence": idempotent,
        "acks": "all",
        "linger.ms": linger_ms,
        "message.timeout.ms": message_timeout_ms,
    }
    if compression:
        config["compression.type"] = compression
    return {**config, **extra}


def consumer_config(settings: Settings, group_id: str, *, auto_commit: bool,
                    offset_reset: str = "earliest", **extra: Any) -> dict[str, Any]:
    """A group consumer tuned for short joins and low latency (see the module doc)."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": group_id,
        "auto.offset.reset": offset_reset,
        "enable.auto.commit": auto_commit,
        "session.timeout.ms": settings.kafka_session_timeout_ms,
        "heartbeat.interval.ms": settings.kafka_heartbeat_interval_ms,
        "topic.metadata.refresh.interval.ms": settings.kafka_metadata_refresh_ms,
        "fetch.wait.max.ms": settings.kafka_fetch_wait_max_ms,
        **extra,
    }


def java_consumer_properties(settings: Settings) -> dict[str, str]:
    """The same group tuning for the Java client (Flink's Kafka source)."""
    return {
        "session.timeout.ms": str(settings.kafka_session_timeout_ms),
        "heartbeat.interval.ms": str(settings.kafka_heartbeat_interval_ms),
    }


def epoch_group_id(name: str, epoch: str) -> str:
    """``ece-<name>-<epoch>``: a fresh broker never inherits a vanished one's offsets."""
    return f"ece-{name}-{epoch}"
