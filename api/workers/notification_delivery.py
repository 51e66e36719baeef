"""The notification delivery worker: ``ece.notifications`` -> Postgres -> doorbell, Web Push.

Per batch (up to ``BATCH_MAX`` messages, or what arrives within ``BATCH_WAIT_S``
of the first): store in one transaction (:func:`api.notifications.store.store_batch`),
commit, dead-letter what could not be stored, commit the Kafka offsets, ring the
doorbell once per user (``{"user_id", "seq"}`` on ``DOORBELL_CHANNEL``), then hand
the rows to the push sender (:class:`api.notifications.outbox.Pusher`, its own
tasks and bounded queue).

Offsets are committed only after the database commit, so a crash anywhere
replays the batch (at least once) and the store's natural-key check makes the
replay a no-op (exactly once in the table). The group id carries the broker
epoch (:func:`ece.kafka.epoch_group_id`): a fresh dev broker never inherits a
vanished one's offsets, and a new group starts at ``earliest`` (never "latest",
which the dev broker reports wrongly). Several processes share the group and so
split the partitions; a user's rows are serialised by that user's counter row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaException, TopicPartition
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError

from api.core.cache import get_redis
from api.core.db import get_engine
from api.nfts.runtime.dlq import DeadLetters
from api.nfts.runtime.process import crash_point
from api.notifications.outbox import Pusher
from api.notifications.push import PushSender
from api.notifications.store import (
    OnReject,
    StoredNotification,
    last_seq_per_user,
    store_batch,
)
from api.notifications.vapid import vapid_for_push
from api.workers.loop import Worker
from ece import kafka
from ece.contracts.realtime import DOORBELL_CHANNEL
from ece.contracts.topics import DEFAULT_PREFIX, notifications_topic
from ece.settings import Settings, get_settings

log = structlog.get_logger("api.workers.notifications")

NAME = "notifications"
PIPELINE = "notification-delivery"  # the DLQ record's ``pipeline``
BATCH_MAX = 500
BATCH_WAIT_S = 0.02
POLL_WAIT_S = 0.5
EPOCH_CHECK_S = 30.0
MAX_BACKOFF_S = 30.0


def next_batch(consumer: Consumer, wait: float = POLL_WAIT_S, most: int = BATCH_MAX,
               gather: float = BATCH_WAIT_S) -> list[Any]:
    """The first message as soon as it comes, plus what arrives within ``gather`` seconds."""
    first = consumer.poll(wait)
    if first is None:
        return []
    return [first, *consumer.consume(most - 1, gather)]


def commit_offsets(consumer: Consumer, offsets: dict[tuple[str, int], int]) -> None:
    consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                    asynchronous=False)


def group_name(settings: Settings) -> str:
    """``notifications``; with another topic prefix (a second stack on one broker) the
    prefix joins it, so the two stacks' workers never share, nor split, a group."""
    prefix = settings.topic_prefix
    return NAME if prefix == DEFAULT_PREFIX else f"{NAME}.{prefix}"


def _reasons_into(reasons: list[str]) -> OnReject:
    return lambda _index, why: reasons.append(why)


class NotificationDelivery(Worker):
    """Consumes, stores and announces notifications; pushes through :class:`Pusher`."""

    name = NAME

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(interval_s=1.0)
        self._settings = settings
        self.stored = 0
        self.batches = 0
        self.joined = False  # ready (heartbeat) only once the group gave us our share
        self.pusher: Pusher | None = None

    @property
    def settings(self) -> Settings:
        return self._settings or get_settings()

    async def cycle(self) -> None:  # pragma: no cover - run() replaces periodic cycles
        return None

    async def run(self, stop: asyncio.Event) -> None:
        """Restart the loop with capped backoff when it dies (database or broker down):
        nothing was committed past the failure, so the batch is simply consumed again."""
        failures = 0
        while not stop.is_set():
            try:
                await self._run(stop)
                return
            except Exception as exc:  # noqa: BLE001 - logged as an error and retried
                failures += 1
                delay = min(MAX_BACKOFF_S, 0.5 * 2**failures)
                log.error("delivery_crashed", failures=failures, retry_in_s=delay,
                          error=f"{type(exc).__name__}: {exc}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    def _consumer(self, epoch: str) -> Consumer:
        extra: dict[str, Any] = {"client.id": f"ece-{NAME}-{os.getpid()}"}
        consumer = Consumer(kafka.consumer_config(
            self.settings, kafka.epoch_group_id(group_name(self.settings), epoch),
            auto_commit=False, **extra))
        self.joined = False

        def assigned(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            self.joined = True  # in the group (an empty share is a share too)
            log.info("delivery_assigned", pid=os.getpid(),
                     partitions=[f"{p.topic}[{p.partition}]" for p in partitions])

        consumer.subscribe([notifications_topic(self.settings.topic_prefix)],
                           on_assign=assigned)
        return consumer

    async def _run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        async with get_engine().connect() as conn:
            await conn.execute(text("SELECT 1"))  # the database first: fail (and retry) early
        topic = notifications_topic(settings.topic_prefix)
        with contextlib.suppress(Exception):  # the flink job may create it; retried below
            await asyncio.to_thread(kafka.ensure_topics, settings, [topic],
                                    partitions=settings.cdc_partitions, timeout=10)
        dead_letters = DeadLetters(settings)
        await dead_letters.start()
        sender = PushSender(await asyncio.to_thread(vapid_for_push, settings),
                            settings.vapid_subject, ttl_seconds=settings.push_ttl_seconds)
        self.pusher = Pusher(get_engine(), sender)
        push_stop = asyncio.Event()
        pushing = asyncio.create_task(self.pusher.run(push_stop), name="notification-pusher")
        consumer: Consumer | None = None
        epoch, checked = "", 0.0
        try:
            while not stop.is_set():
                if consumer is None or time.monotonic() - checked > EPOCH_CHECK_S:
                    current = await asyncio.to_thread(kafka.cluster_id, settings, 5.0)
                    checked = time.monotonic()
                    if consumer is None or current != epoch:
                        if consumer is not None:
                            await asyncio.to_thread(consumer.close)
                        consumer, epoch = self._consumer(current), current
                        log.info("delivery_subscribed", epoch=epoch, topic=topic)
                messages = await asyncio.to_thread(next_batch, consumer)
                if messages:
                    await self._deliver(consumer, messages, dead_letters)
                if pushing.done():
                    pushing.result()  # re-raise: the pusher must not die silently
                if self.joined:
                    self.last_ok = time.time()
        finally:
            push_stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pushing, 5.0)
            if consumer is not None:
                await asyncio.to_thread(consumer.close)
            await dead_letters.flush(5.0)

    async def _deliver(self, consumer: Consumer, messages: list[Any],
                       dead_letters: DeadLetters) -> None:
        values: list[Any] = []
        sources: list[tuple[str, bytes]] = []
        offsets: dict[tuple[str, int], int] = {}
        dead = 0
        for message in messages:
            if message.error() is not None:
                log.debug("delivery_consumer_event", error=str(message.error()))
                continue
            key = (message.topic(), message.partition())
            offsets[key] = max(offsets.get(key, 0), message.offset() + 1)
            raw = message.value()
            if raw is None:  # a tombstone carries no notification
                continue
            try:
                values.append(json.loads(raw))
                sources.append((message.topic(), raw))
            except ValueError as exc:
                dead_letters.publish(message.topic(), PIPELINE, raw.decode(errors="replace"),
                                     f"not JSON: {exc}")
                dead += 1
        rejected: list[tuple[int, str]] = []
        stored = await self._store(values, rejected) if values else []
        for index, reason in rejected:
            source_topic, raw = sources[index]
            log.warning("notification_rejected", reason=reason)
            dead_letters.publish(source_topic, PIPELINE, raw.decode(errors="replace"), reason)
        if rejected or dead:
            await dead_letters.flush(10.0)
        if stored:
            self.stored += len(stored)
            self.batches += 1
            # TEST HOOK (ECE_TEST_CRASH_AT=delivery_after_store[:<n>]): killed after the
            # n-th storing batch's commit, before its offsets: the replay must be a no-op.
            crash_point("delivery_after_store", self.batches)
        if offsets:
            try:
                await asyncio.to_thread(commit_offsets, consumer, offsets)
            except KafkaException as exc:  # a rebalance: the new owner replays, deduplicated
                log.warning("delivery_offset_commit_failed", error=str(exc))
        if stored:
            await self._ring(stored)
            assert self.pusher is not None
            self.pusher.offer(stored)
            log.debug("delivery_batch", messages=len(messages), stored=len(stored),
                      rejected=len(rejected) + dead)

    async def _store(self, values: list[Any],
                     rejected: list[tuple[int, str]]) -> list[StoredNotification]:
        """The batch in one transaction. If the database refuses its data (a constraint
        or a value the checks did not foresee), store the values one by one so only the
        offending ones are dead-lettered: one bad record must not block the stream."""
        try:
            async with get_engine().begin() as conn:
                return await store_batch(conn, values,
                                         on_reject=lambda i, why: rejected.append((i, why)))
        except (IntegrityError, DataError) as exc:
            log.error("delivery_batch_refused", size=len(values), error=str(exc.orig)[:300])
        rejected.clear()
        stored: list[StoredNotification] = []
        for index, value in enumerate(values):
            reasons: list[str] = []
            try:
                async with get_engine().begin() as conn:
                    stored += await store_batch(conn, [value], on_reject=_reasons_into(reasons))
                rejected.extend((index, why) for why in reasons)
            except (IntegrityError, DataError) as exc:
                rejected.append((index, f"refused by the database: {exc.orig}"[:500]))
        return stored

    async def _ring(self, stored: list[StoredNotification]) -> None:
        """One doorbell per user per batch, after the commit (a hint: the API re-reads)."""
        try:
            async with get_redis().pipeline(transaction=False) as pipe:
                for user_id, seq in last_seq_per_user(stored).items():
                    pipe.publish(DOORBELL_CHANNEL, json.dumps({"user_id": str(user_id),
                                                               "seq": seq}))
                await pipe.execute()
        except RedisError as exc:  # the API polls the counters every 2 s anyway
            log.warning("doorbell_failed", error=str(exc))
