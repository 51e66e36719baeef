"""The ``market`` channel: one consumer of ``ece.market.activity`` and
``ece.market.stats`` per API process.

Activity events go out as ``{type: "market", data: <activity event>}``, and each
per-card one-minute stats window (and every correction of one) as ``{type: "market",
stream: "stats", data: <stats window>}``, so a ticker needs no polling.

Started lazily by the first socket that asks for ``market`` and fanned out to every
such socket of this process (one broker connection, not one per socket). It is a
ticker, not a ledger: it reads from the partitions' current end and assigns them
directly (no consumer group: nothing to commit, no join to wait for, and the dev
broker makes a join wait half the session timeout; see ``ece.kafka``). That broker
reports the end as the base offset of the last batch plus one, so a few recent
events may be shown again at start; a short memory of event ids drops repeats.

The consumer is blocking (confluent-kafka), so it runs in a thread and hands each
event to the event loop. A broker that is down or a topic not created yet is
retried with backoff and logged: the notifications channel never depends on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any

import structlog
from confluent_kafka import OFFSET_END, Consumer, KafkaError, TopicPartition

from api.notifications.subscriber import Subscriber
from ece.contracts.topics import market_activity_topic, market_stats_topic
from ece.retry import backoff_delay
from ece.settings import Settings

log = structlog.get_logger(__name__)

RECENT_IDS = 2048
POLL_SECONDS = 0.5
STATS_RECHECK_S = 10.0  # how often a feed started before the stats job looks for its topic


class MarketFeed:
    """Market activity events fanned out to the subscribed sockets of this process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = market_activity_topic(settings.topic_prefix)
        self.stats_topic = market_stats_topic(settings.topic_prefix)
        self._subs: set[Subscriber] = set()
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.assigned = threading.Event()

    def add(self, subscriber: Subscriber) -> None:
        self._subs.add(subscriber)
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._run, name="market-feed", daemon=True)
            self._thread.start()

    def remove(self, subscriber: Subscriber) -> None:
        self._subs.discard(subscriber)

    async def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)
            self._thread = None

    # --- the event loop side ----------------------------------------------------------

    def publish(self, raw: bytes, topic: str | None = None) -> None:
        """Fan one event out (on the event loop); malformed or repeated ones are dropped."""
        stats = topic == self.stats_topic
        try:
            event = json.loads(raw)
            # A stats window is re-emitted when a late sale corrects it: its figures are
            # part of its identity, so a correction goes out and a repeat does not.
            event_id = (f"stats:{event['card_id']}:{event['window_start']}:{event['sales']}:"
                        f"{event['volume_cents']}" if stats else str(event["event_id"]))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("market_event_malformed", error=str(exc))
            return
        if event_id in self._recent:
            return
        self._recent[event_id] = None
        while len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)
        envelope: dict[str, Any] = {"type": "market", "data": event}
        if stats:
            envelope["stream"] = "stats"
        message = json.dumps(envelope, separators=(",", ":"))
        for subscriber in list(self._subs):
            subscriber.offer(message)

    # --- the consumer thread ----------------------------------------------------------

    def _consumer(self) -> Consumer:
        return Consumer({
            "bootstrap.servers": self.settings.kafka_bootstrap,
            "group.id": f"ece-live-ticker-{uuid.uuid4().hex[:12]}",  # never joined
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "fetch.wait.max.ms": self.settings.kafka_fetch_wait_max_ms,
            "topic.metadata.refresh.interval.ms": self.settings.kafka_metadata_refresh_ms,
        })

    @staticmethod
    def _partitions(consumer: Consumer, name: str) -> list[TopicPartition] | str:
        """The topic's partitions at their end, or why there are none yet."""
        topic = consumer.list_topics(name, timeout=5.0).topics.get(name)
        if topic is None or topic.error is not None or not topic.partitions:
            return f"topic {name} not available" + (
                f": {topic.error}" if topic is not None and topic.error else "")
        return [TopicPartition(name, p, OFFSET_END) for p in topic.partitions]

    def _assign(self, consumer: Consumer) -> bool:
        """Activity must exist (it is the ticker); stats joins when its job has made it.
        True when the stats topic is assigned too."""
        partitions = self._partitions(consumer, self.topic)
        if isinstance(partitions, str):
            raise LookupError(partitions)
        stats = self._partitions(consumer, self.stats_topic)
        consumer.assign(partitions + (stats if isinstance(stats, list) else []))
        self.assigned.set()
        log.info("market_feed_assigned", topic=self.topic, partitions=len(partitions),
                 stats=isinstance(stats, list))
        return isinstance(stats, list)

    def _join_stats(self, consumer: Consumer) -> bool:
        """Add the stats topic once the market_stats job has created it; True if joined."""
        stats = self._partitions(consumer, self.stats_topic)
        if isinstance(stats, str):
            return False
        consumer.incremental_assign(stats)
        log.info("market_feed_stats_joined", topic=self.stats_topic, partitions=len(stats))
        return True

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            consumer: Consumer | None = None
            try:
                consumer = self._consumer()
                with_stats = self._assign(consumer)
                attempt = 0
                self._poll(consumer, with_stats)
            except Exception as exc:  # noqa: BLE001 - broker down or no topic yet: retry
                attempt += 1
                delay = backoff_delay(attempt, cap=30.0)
                log.warning("market_feed_unavailable", error=f"{type(exc).__name__}: {exc}",
                            retry_in_s=round(delay, 2))
                self.assigned.clear()
                self._stop.wait(delay)
            finally:
                if consumer is not None:
                    with contextlib.suppress(Exception):
                        consumer.close()

    def _poll(self, consumer: Consumer, with_stats: bool) -> None:
        next_stats_check = time.monotonic() + STATS_RECHECK_S
        while not self._stop.is_set():
            if not with_stats and time.monotonic() >= next_stats_check:
                with_stats = self._join_stats(consumer)
                next_stats_check = time.monotonic() + STATS_RECHECK_S
            msg: Any = consumer.poll(POLL_SECONDS)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.fatal() or error.code() == KafkaError._UNKNOWN_TOPIC:
                    raise RuntimeError(str(error))
                log.warning("market_feed_error", error=str(error))
                continue
            value = msg.value()
            if value and self._loop is not None:
                self._loop.call_soon_threadsafe(self.publish, value, msg.topic())
