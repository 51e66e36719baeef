"""The Web Push outbox: pushes stored notifications beside the store loop.

``notifications.pushed_at IS NULL`` *is* the outbox. The delivery worker hands each
freshly stored row to :meth:`Pusher.offer`; a full queue drops the hand-off (never
waits), and the sweeps find whatever was dropped or left behind by a process
killed between its commit and its push. So a slow or dead push service can delay
pushes, but never the storing of notifications or the doorbell.

Each notification is pushed in its own short transaction that holds its row
``FOR UPDATE SKIP LOCKED`` and re-checks ``pushed_at IS NULL``: two delivery
processes (or a hand-off and a sweep) never push the same row twice, and a push
is marked done (``pushed_at``) only after every subscription of the user was tried
to the end: sent, found gone (deleted), or given up on after retries (logged as an
error). A process killed mid-push pushes that notification again after restart
(Web Push is at least once; the ``Topic`` header makes an outbid replace itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.notifications.push import PushFailed, PushSender, Subscription
from api.notifications.store import StoredNotification

log = structlog.get_logger("api.notifications.outbox")

SWEEP_WINDOW_HOURS = 24  # older unpushed rows are stale: marked done without a push
SWEEP_MIN_AGE_S = 30  # the periodic sweep leaves fresh rows to the hand-off path
SWEEP_BATCH = 200

_CLAIM = text(
    "SELECT user_id, seq, kind, payload FROM notifications"
    " WHERE id = :id AND pushed_at IS NULL FOR UPDATE SKIP LOCKED"
)
_SUBSCRIPTIONS = text(
    "SELECT id, endpoint, p256dh, auth FROM push_subscriptions WHERE user_id = :user"
    " ORDER BY created_at, id"
)
_DELETE_SUBSCRIPTION = text("DELETE FROM push_subscriptions WHERE id = :id")
_DONE = text("UPDATE notifications SET pushed_at = now() WHERE id = :id")
_DUE = text(
    "SELECT id FROM notifications WHERE pushed_at IS NULL"
    " AND created_at > now() - make_interval(hours => :window)"
    " AND created_at <= now() - make_interval(secs => :min_age)"
    " ORDER BY created_at LIMIT :limit"
)
_EXPIRE_STALE = text(
    "UPDATE notifications SET pushed_at = now() WHERE pushed_at IS NULL"
    " AND created_at <= now() - make_interval(hours => :window)"
)


class Pusher:
    """A bounded queue of notification ids and ``concurrency`` tasks pushing them."""

    def __init__(self, engine: AsyncEngine, sender: PushSender, *, queue_size: int = 10_000,
                 concurrency: int = 8, sweep_seconds: float = 60.0) -> None:
        self.engine = engine
        self.sender = sender
        self.queue: asyncio.Queue[uuid.UUID] = asyncio.Queue(queue_size)
        self.concurrency = concurrency
        self.sweep_seconds = sweep_seconds
        self.dropped = 0
        self.pushed = 0

    def offer(self, rows: list[StoredNotification]) -> None:
        """Queue the rows that need a push; never blocks (a full queue leaves them to the sweep)."""
        for row in rows:
            if not row.push:
                continue
            try:
                self.queue.put_nowait(row.id)
            except asyncio.QueueFull:
                self.dropped += 1
        if self.dropped:
            log.warning("push_queue_full", dropped=self.dropped, queue=self.queue.qsize())
            self.dropped = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep once at start (rows a killed process left), then push until ``stop``."""
        tasks = [asyncio.create_task(self._pushing(), name=f"push-{n}")
                 for n in range(self.concurrency)]
        try:
            await self._sweep(min_age_s=0)
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.sweep_seconds)
                if not stop.is_set():
                    await self._sweep(min_age_s=SWEEP_MIN_AGE_S)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.sender.close()

    async def _sweep(self, *, min_age_s: float) -> None:
        """Queue every unpushed row of the last day (oldest first); expire older ones."""
        try:
            async with self.engine.begin() as conn:
                stale = (await conn.execute(_EXPIRE_STALE, {"window": SWEEP_WINDOW_HOURS})).rowcount
                due = [r.id for r in (await conn.execute(_DUE, {
                    "window": SWEEP_WINDOW_HOURS, "min_age": min_age_s,
                    "limit": self.queue.maxsize or SWEEP_BATCH})).all()]
        except Exception as exc:  # noqa: BLE001 - the next sweep tries again
            log.warning("push_sweep_failed", error=f"{type(exc).__name__}: {exc}")
            return
        if stale:
            log.warning("push_expired_unsent", count=stale, older_than_hours=SWEEP_WINDOW_HOURS)
        queued = 0
        for notification_id in due:
            if self.queue.full():
                break
            self.queue.put_nowait(notification_id)
            queued += 1
        if queued:
            log.info("push_sweep_queued", count=queued)

    async def _pushing(self) -> None:
        while True:
            notification_id = await self.queue.get()
            try:
                await self.push(notification_id)
            except Exception as exc:  # noqa: BLE001 - left unpushed: the next sweep retries
                log.error("push_failed", notification_id=str(notification_id),
                          error=f"{type(exc).__name__}: {exc}")
            finally:
                self.queue.task_done()

    async def push(self, notification_id: uuid.UUID) -> bool:
        """Push one notification to each subscription of its user; False if another
        process has it (or it was pushed already)."""
        async with self.engine.begin() as conn:
            row = (await conn.execute(_CLAIM, {"id": notification_id})).first()
            if row is None:
                return False
            subscriptions = [Subscription(r.id, r.endpoint, r.p256dh, r.auth)
                             for r in (await conn.execute(_SUBSCRIPTIONS,
                                                          {"user": row.user_id})).all()]
            for subscription in subscriptions:
                outcome = await self._send(subscription, notification_id, row)
                if outcome == "gone":
                    await conn.execute(_DELETE_SUBSCRIPTION, {"id": subscription.id})
                    log.info("push_subscription_gone", subscription_id=str(subscription.id),
                             user_id=str(row.user_id))
            await conn.execute(_DONE, {"id": notification_id})
        self.pushed += 1
        return True

    async def _send(self, subscription: Subscription, notification_id: uuid.UUID,
                    row: Any) -> str:
        try:
            return await self.sender.send(subscription, notification_id, int(row.seq),
                                          row.kind, dict(row.payload or {}))
        except PushFailed as exc:
            log.error("push_given_up", notification_id=str(notification_id),
                      subscription_id=str(subscription.id), status=exc.status, error=str(exc))
            return "failed"
