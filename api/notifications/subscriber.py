"""One live socket: what it has sent, its bounded send queue, and its four loops.

* **fetch**: woken by the hub (doorbell or sweep), reads ``seq > last_sent`` from the
  table in pages, oldest first, and queues them: the socket never sends anything
  the database does not hold, and never skips or repeats a seq.
* **send**: drains the queue to the socket, each send bounded by
  :data:`SEND_TIMEOUT_SECONDS`;
* **ping**: ``{type: "ping", at}`` every ``ping_seconds`` (a dead TCP peer is found
  by the send timing out, and proxies see traffic);
* **receive**: reads (and ignores) what the client sends, to notice it leaving.

The queue is bounded (:data:`SEND_QUEUE_MAX` messages). Notifications are read from
the table only while the queue is under :data:`NOTIFY_HIGH`, so a long replay flows
at the client's pace instead of overflowing; the room above is for pings and market
events, which cannot wait. A client that stops reading fills the kernel buffers, then
the queue: a send, or the wait for room, taking longer than
:data:`SEND_TIMEOUT_SECONDS`, or a ping/market event finding the queue full, closes
the socket with 4408. Memory per socket stays bounded, a slow reader never holds
back the others, and the client resumes with ``after_seq``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import select
from starlette.websockets import WebSocket, WebSocketDisconnect

from api.core.db import get_sessionmaker
from api.notifications.models import Notification
from api.notifications.schemas import NotificationOut

log = structlog.get_logger(__name__)

SEND_QUEUE_MAX = 256
NOTIFY_HIGH = 128  # notifications wait for room below this; the rest is for pings/market
SEND_TIMEOUT_SECONDS = 10.0
# The close frame queues behind what the kernel holds already: a client that resumes
# reading within this long still sees 4408; one that never does loses the TCP connection.
CLOSE_TIMEOUT_SECONDS = 10.0
FETCH_PAGE = 100
FETCH_RETRY_SECONDS = 1.0
CLOSE_SLOW = 4408


class Subscriber:
    """The state the hub needs to wake a socket and the market feed to fan out to it."""

    def __init__(self, user_id: uuid.UUID, last_sent: int, channels: frozenset[str]) -> None:
        self.user_id = user_id
        self.last_sent = last_sent
        self.channels = channels
        self.queue: asyncio.Queue[str] = asyncio.Queue(SEND_QUEUE_MAX)
        self.wakeup = asyncio.Event()
        self.room = asyncio.Event()
        self.slow = asyncio.Event()

    def wake(self) -> None:
        self.wakeup.set()

    def offer(self, message: str) -> bool:
        """Queue ``message``; a full queue marks the reader slow (the socket closes 4408)."""
        if self.slow.is_set():
            return False
        try:
            self.queue.put_nowait(message)
            return True
        except asyncio.QueueFull:
            self.slow.set()
            return False

    async def put_notification(self, message: str, timeout: float) -> bool:  # noqa: ASYNC109
        """Queue ``message`` once the queue is under :data:`NOTIFY_HIGH`; waiting longer
        than ``timeout`` marks the reader slow."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.queue.qsize() >= NOTIFY_HIGH:
            self.room.clear()
            try:
                await asyncio.wait_for(self.room.wait(), max(deadline - loop.time(), 0))
            except TimeoutError:
                self.slow.set()
                return False
        return self.offer(message)

    def taken(self) -> None:
        """The sender took a message: wake a fetcher waiting for room."""
        if self.queue.qsize() < NOTIFY_HIGH:
            self.room.set()


def notification_message(row: Notification) -> str:
    data = NotificationOut.model_validate(row).model_dump(mode="json")
    return json.dumps({"type": "notification", "data": data}, separators=(",", ":"))


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def fetch_after(user_id: uuid.UUID, after_seq: int, limit: int) -> list[tuple[int, str]]:
    """``(seq, message)`` of the user's notifications after ``after_seq``, oldest first."""
    async with get_sessionmaker()() as session:
        rows = await session.scalars(
            select(Notification)
            .where(Notification.user_id == user_id, Notification.seq > after_seq)
            .order_by(Notification.seq)
            .limit(limit)
        )
        return [(row.seq, notification_message(row)) for row in rows]


Page = list[tuple[int, str]]


class SharedFetches:
    """One query for all of a user's sockets that need the same page at the same time.

    A doorbell wakes every socket of the user at once, and they all stand at the same
    ``last_sent``: without this, ten tabs would be ten identical queries (and ten
    serialisations). Only in-flight queries are shared; nothing is cached.
    """

    def __init__(self) -> None:
        self._inflight: dict[tuple[uuid.UUID, int, int], asyncio.Future[Page]] = {}

    async def after(self, user_id: uuid.UUID, after_seq: int, limit: int) -> Page:
        key = (user_id, after_seq, limit)
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(fetch_after(user_id, after_seq, limit))
            self._inflight[key] = future
            future.add_done_callback(lambda _f: self._inflight.pop(key, None))
        return await asyncio.shield(future)


async def _fetch_loop(sub: Subscriber, fetches: SharedFetches) -> None:
    while True:
        await sub.wakeup.wait()
        sub.wakeup.clear()
        while True:
            try:
                rows = await fetches.after(sub.user_id, sub.last_sent, FETCH_PAGE)
            except Exception as exc:  # noqa: BLE001 - database away: retry, keep the socket
                log.warning("live_fetch_failed", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(FETCH_RETRY_SECONDS)
                continue
            for seq, message in rows:
                if not await sub.put_notification(message, SEND_TIMEOUT_SECONDS):
                    return
                sub.last_sent = seq
            if len(rows) < FETCH_PAGE:
                break


async def _send_loop(ws: WebSocket, sub: Subscriber) -> None:
    while True:
        message = await sub.queue.get()
        sub.taken()
        try:
            await asyncio.wait_for(ws.send_text(message), SEND_TIMEOUT_SECONDS)
        except TimeoutError:
            sub.slow.set()
            return


async def _ping_loop(sub: Subscriber, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        if not sub.offer(json.dumps({"type": "ping", "at": now_iso()})):
            return


async def _receive_loop(ws: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return


async def _slow(sub: Subscriber) -> None:
    await sub.slow.wait()


async def serve(ws: WebSocket, sub: Subscriber, *, fetches: SharedFetches,
                ping_seconds: float) -> None:
    """Run the socket until the client leaves or reads too slowly (then close 4408)."""
    tasks: list[asyncio.Task[Any]] = [
        asyncio.create_task(_send_loop(ws, sub)),
        asyncio.create_task(_ping_loop(sub, ping_seconds)),
        asyncio.create_task(_receive_loop(ws)),
        asyncio.create_task(_slow(sub)),
    ]
    if "notifications" in sub.channels:
        tasks.append(asyncio.create_task(_fetch_loop(sub, fetches)))
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                if not isinstance(exc, WebSocketDisconnect | OSError):
                    log.warning("live_socket_failed", error=f"{type(exc).__name__}: {exc}")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if sub.slow.is_set():
        log.info("live_socket_slow", user_id=str(sub.user_id), last_sent=sub.last_sent)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(CLOSE_SLOW, "slow reader: resume with after_seq"),
                                   CLOSE_TIMEOUT_SECONDS)
