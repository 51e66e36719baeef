"""The change feed: CDC topics consumed in a group keyed by the broker epoch.

A fresh local broker (new cluster id, :func:`ece.kafka.cluster_id`) never inherits
offsets of a vanished one. Events only *wake* the workers; Postgres is read again
for every decision, so a missed, duplicated or reordered event cannot cause a wrong
action, and the sweep (:mod:`.scheduler`) catches whatever the feed missed.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import structlog
from confluent_kafka import Consumer

from api.nfts.runtime.dlq import DeadLetters
from api.nfts.runtime.scheduler import (
    Scheduler,
    Submitter,
    WakeFilter,
    sleep_or_stop,
    sweep_loop,
)
from ece import kafka
from ece.settings import Settings

log = structlog.get_logger("api.nfts.runtime")

EPOCH_CHECK_SECONDS = 30.0


async def feed_and_sweep(
    settings: Settings,
    stop: asyncio.Event,
    *,
    name: str,
    topics: list[str],
    on_event: Callable[[Submitter, str, dict[str, Any]], None],
    job: Callable[[uuid.UUID], Awaitable[None]],
    unfinished: Callable[[list[uuid.UUID] | None], Awaitable[list[uuid.UUID]]],
    dead_letters: DeadLetters,
    concurrency: int,
    sweep_seconds: float,
) -> None:
    """The loop both NFT workers share, until ``stop``: the change feed wakes jobs at
    once, the sweep re-submits whatever Postgres says is unfinished (so a missed event
    only delays work), and in-flight jobs get a short grace period on the way out.

    ``unfinished(None)`` is the sweep's question (every key with work);
    ``unfinished(keys)`` is the same question restricted to the feed's keys, asked by a
    :class:`WakeFilter`: one query per burst of events instead of a job per key."""
    scheduler = Scheduler(job, concurrency)
    wakes = WakeFilter(scheduler, unfinished)
    feed = ChangeFeed(settings, name, topics, partial(on_event, wakes), dead_letters)
    tasks = [
        asyncio.create_task(feed.run(stop), name=f"{name}-feed"),
        asyncio.create_task(sweep_loop(stop, name, sweep_seconds, partial(unfinished, None),
                                       scheduler), name=f"{name}-sweep"),
    ]
    await stop.wait()
    await asyncio.gather(*tasks, return_exceptions=True)
    await wakes.settle()  # a check in flight may still submit jobs: let it, then drain
    await scheduler.drain(10.0)


def broker_epoch(settings: Settings, timeout: float = 5.0) -> str:
    return kafka.cluster_id(settings, timeout)


class ChangeFeed:
    """Consume CDC topics and call ``on_event(topic, value)`` for each change (not tombstones).

    Offsets are committed automatically: an event is only a wake-up call, and the
    sweep recovers anything lost between a poll and its processing.
    """

    def __init__(
        self,
        settings: Settings,
        worker: str,
        topics: list[str],
        on_event: Callable[[str, dict[str, Any]], None],
        dead_letters: DeadLetters | None = None,
    ) -> None:
        self.settings = settings
        self.worker = worker
        self.topics = topics
        self.on_event = on_event
        self.dead_letters = dead_letters
        self.epoch: str | None = None

    def _consumer(self, epoch: str) -> Consumer:
        consumer = Consumer(kafka.consumer_config(
            self.settings,
            kafka.epoch_group_id(self.worker, epoch),
            auto_commit=True,  # a new group starts at "earliest": it sees every pending change
            **{"client.id": f"ece-{self.worker}-{os.getpid()}"},
        ))
        consumer.subscribe(self.topics)
        return consumer

    async def run(self, stop: asyncio.Event) -> None:
        consumer: Consumer | None = None
        checked = 0.0
        try:
            while not stop.is_set():
                if consumer is None or time.monotonic() - checked > EPOCH_CHECK_SECONDS:
                    try:
                        epoch = await asyncio.to_thread(broker_epoch, self.settings, 5.0)
                    except Exception as exc:  # noqa: BLE001 - broker down: the sweep still runs
                        log.warning("feed_broker_unreachable", worker=self.worker, error=str(exc))
                        await sleep_or_stop(stop, 2.0)
                        continue
                    checked = time.monotonic()
                    if epoch != self.epoch or consumer is None:
                        if consumer is not None:
                            await asyncio.to_thread(consumer.close)
                        log.info("feed_subscribed", worker=self.worker, epoch=epoch,
                                 topics=self.topics)
                        consumer, self.epoch = self._consumer(epoch), epoch
                messages = await asyncio.to_thread(_next_batch, consumer)
                for message in messages:
                    self._handle(message)
        finally:
            if consumer is not None:
                await asyncio.to_thread(consumer.close)

    def _handle(self, message: Any) -> None:
        if message.error() is not None:
            log.debug("feed_error", worker=self.worker, error=str(message.error()))
            return
        raw = message.value()
        if raw is None:  # tombstone after a delete
            return
        try:
            value = json.loads(raw)
            if not isinstance(value, dict):
                raise ValueError("not a Debezium envelope")
            self.on_event(message.topic(), value)
        except Exception as exc:  # noqa: BLE001 - never drop silently: dead-letter it
            log.warning("feed_bad_event", worker=self.worker, topic=message.topic(), error=str(exc))
            if self.dead_letters is not None:
                self.dead_letters.publish(
                    message.topic(), self.worker, raw.decode(errors="replace"), str(exc)
                )


def _next_batch(consumer: Consumer, wait: float = 0.5, most: int = 500) -> list[Any]:
    """The first message as soon as it arrives, plus whatever is already fetched.

    ``consume(n, timeout)`` alone would wait for ``n`` messages or the whole timeout,
    delaying every wake-up by up to ``timeout`` when traffic is light.
    """
    first = consumer.poll(wait)
    if first is None:
        return []
    return [first, *consumer.consume(most - 1, 0)]


def parse_uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None
