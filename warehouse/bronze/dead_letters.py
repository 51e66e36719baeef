"""Bronze's dead letters: an invalid CDC message goes to ``ece.dlq``, never silently away.

The event contract forbids silent drops, so a message the landing cannot parse is
produced to the DLQ topic (:func:`ece.contracts.topics.dlq_topic`), keyed by its
source topic, with where it came from (topic, partition, offset), its raw key and
value, the error and the reason. At least once: the landing calls :meth:`flush`
before the lake transaction that moves the offsets past those messages commits, and
:meth:`flush` raises if anything is undelivered, so a crash or a dead broker makes
the batch land (and its letters go out) again, never lose them.

The value is :func:`ece.contracts.dlq.dlq_value` (what the stream jobs and workers
write) plus the fields of the event contract's DLQ row (``partition, offset, key,
value, reason, job, at``), so every consumer of either shape can read it.
"""

from __future__ import annotations

import json
from typing import Any

from confluent_kafka import Message, Producer

from ece import kafka
from ece.contracts.dlq import dlq_value
from ece.contracts.topics import dlq_topic

JOB = "bronze"
INVALID = "invalid"


def _text(raw: bytes | str | None) -> str | None:
    if raw is None:
        return None
    return raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")


def letter(msg: Message, error: str, reason: str = INVALID) -> dict[str, Any]:
    """The DLQ value of one unprocessable message, as a dict."""
    topic = str(msg.topic())
    value = _text(msg.value())
    record: dict[str, Any] = json.loads(dlq_value(
        topic, JOB, value, error, reason, partition=msg.partition(), offset=msg.offset(),
        key=_text(msg.key())))
    return record


class UndeliveredDeadLetters(RuntimeError):
    """The DLQ did not acknowledge every letter: the batch must not commit."""


class DeadLetters:
    """One idempotent producer to the DLQ topic, created on the first letter."""

    def __init__(self, bootstrap: str, prefix: str, timeout_s: float = 30.0) -> None:
        self.bootstrap = bootstrap
        self.topic = dlq_topic(prefix)
        self.timeout_s = timeout_s
        self.sent = 0
        self._producer: Producer | None = None
        self._failures: list[str] = []

    def _ensure(self) -> Producer:
        if self._producer is None:
            kafka.ensure_topics(self.bootstrap, [self.topic], timeout=10)
            self._producer = Producer(kafka.producer_config(
                self.bootstrap, linger_ms=5,
                message_timeout_ms=int(self.timeout_s * 1000), compression=None))
        return self._producer

    def send(self, msg: Message, error: str, reason: str = INVALID) -> None:
        """Queue one letter (delivered for sure only once :meth:`flush` returns)."""

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                self._failures.append(str(err))

        producer = self._ensure()
        producer.produce(self.topic, key=str(msg.topic()).encode(),
                         value=json.dumps(letter(msg, error, reason),
                                          separators=(",", ":")).encode(),
                         on_delivery=delivered)
        producer.poll(0)
        self.sent += 1

    def flush(self) -> None:
        """Wait for every queued letter; raise unless the broker acknowledged all."""
        if self._producer is None:
            return
        left = self._producer.flush(self.timeout_s)
        failures, self._failures = self._failures, []
        if left or failures:
            raise UndeliveredDeadLetters(
                f"{self.topic}: {left} letters unsent, {len(failures)} failed "
                f"({'; '.join(failures[:3])})")
