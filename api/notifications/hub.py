"""The per-process registry of live sockets, woken by the doorbell and a safety net.

Notify-then-fetch: the delivery worker stores a notification, commits, then
``PUBLISH``es ``{"user_id", "seq"}`` on :data:`DOORBELL_CHANNEL`. Each API process
runs one :class:`Hub`: one Redis subscription for the whole process (not one per
socket), which only *wakes* that user's sockets; every socket then reads
``seq > last_sent`` from the ``notifications`` table itself. The message is never
trusted for data, so a forged or duplicated doorbell can at worst cause a query.

Pub/sub is fire-and-forget (a message published while this process reconnects to
Redis is gone), so every :data:`SWEEP_SECONDS` the hub reads
``notification_counters.last_seq`` of all its connected users in one query and
wakes the sockets that are behind: a lost doorbell delays a notification by at
most that long and never loses it. Several API processes each run their own hub,
so a user's notification reaches their sockets on whichever process holds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable

import structlog
from redis.asyncio import Redis
from sqlalchemy import select

from api.core.db import get_sessionmaker
from api.notifications.market import MarketFeed
from api.notifications.models import NotificationCounter
from api.notifications.subscriber import SharedFetches, Subscriber
from ece.contracts.realtime import DOORBELL_CHANNEL
from ece.retry import backoff_delay
from ece.settings import Settings

log = structlog.get_logger(__name__)

SWEEP_SECONDS = 2.0  # the longest a lost doorbell can delay a notification


class Hub:
    """Connected subscribers by user, the doorbell listener and the counter sweep."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._by_user: dict[uuid.UUID, set[Subscriber]] = defaultdict(set)
        self._tasks: list[asyncio.Task[None]] = []
        self.doorbell_connected = False
        self.market = MarketFeed(settings)
        self.fetches = SharedFetches()

    # --- registry ---------------------------------------------------------------------

    def add(self, subscriber: Subscriber) -> None:
        self._by_user[subscriber.user_id].add(subscriber)
        if "market" in subscriber.channels:
            self.market.add(subscriber)

    def remove(self, subscriber: Subscriber) -> None:
        self.market.remove(subscriber)
        subs = self._by_user.get(subscriber.user_id)
        if subs is not None:
            subs.discard(subscriber)
            if not subs:
                del self._by_user[subscriber.user_id]

    def subscribers(self) -> Iterable[Subscriber]:
        for subs in list(self._by_user.values()):
            yield from list(subs)

    @property
    def socket_count(self) -> int:
        return sum(len(s) for s in self._by_user.values())

    def ring(self, user_id: uuid.UUID) -> None:
        for subscriber in list(self._by_user.get(user_id, ())):
            subscriber.wake()

    def ring_everyone(self) -> None:
        for subscriber in self.subscribers():
            subscriber.wake()

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening; never fails: Redis or the database being down is retried."""
        self._tasks = [
            asyncio.create_task(self._listen(), name="doorbell"),
            asyncio.create_task(self._sweep(), name="notification-sweep"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self.market.stop()

    # --- the doorbell -----------------------------------------------------------------

    def on_doorbell(self, data: bytes | str) -> None:
        """Wake the named user's sockets; a malformed message is logged and dropped."""
        try:
            message = json.loads(data)
            user_id = uuid.UUID(str(message["user_id"]))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("doorbell_malformed", error=str(exc))
            return
        self.ring(user_id)

    async def _listen(self) -> None:
        attempt = 0
        while True:
            redis = Redis.from_url(self.settings.redis_url, socket_connect_timeout=2.0,
                                   health_check_interval=15)
            try:
                async with redis.pubsub() as pubsub:
                    await pubsub.subscribe(DOORBELL_CHANNEL)
                    attempt = 0
                    self.doorbell_connected = True
                    log.info("doorbell_listening", channel=DOORBELL_CHANNEL)
                    self.ring_everyone()  # whatever rang while we were not listening
                    while True:
                        message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                           timeout=1.0)
                        if message is not None and message.get("type") == "message":
                            self.on_doorbell(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis down: the sweep still delivers
                attempt += 1
                delay = backoff_delay(attempt, cap=10.0)
                log.warning("doorbell_unavailable", error=f"{type(exc).__name__}: {exc}",
                            retry_in_s=round(delay, 2))
                self.doorbell_connected = False
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(Exception):
                    await redis.aclose()

    # --- the safety net ---------------------------------------------------------------

    async def sweep_once(self) -> int:
        """Wake every socket whose user's counter is past what it sent; returns how many."""
        users = list(self._by_user)
        if not users:
            return 0
        async with get_sessionmaker()() as session:
            rows = (await session.execute(
                select(NotificationCounter.user_id, NotificationCounter.last_seq)
                .where(NotificationCounter.user_id.in_(users))
            )).all()
        woken = 0
        for user_id, last_seq in rows:
            for subscriber in list(self._by_user.get(user_id, ())):
                if subscriber.last_sent < last_seq:
                    subscriber.wake()
                    woken += 1
        return woken

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                woken = await self.sweep_once()
                if woken:
                    log.info("sweep_woke_sockets", sockets=woken)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - database down: try again next round
                log.warning("sweep_failed", error=f"{type(exc).__name__}: {exc}")
