"""One job per key (NFT or card) in this process, and the database sweep that feeds it.

:class:`Scheduler` bounds concurrency and re-runs a job when its key is poked while
it runs, so an event that arrives mid-job is never lost. :func:`sweep_loop`
re-submits whatever Postgres says is unfinished, so a missed event only delays work.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from ece.retry import backoff_delay

log = structlog.get_logger("api.nfts.runtime")


class Submitter(Protocol):
    """What a worker's event handler hands keys to: a :class:`Scheduler` or a filter."""

    def submit(self, key: uuid.UUID) -> None: ...


class Scheduler:
    """One job per key at a time, ``concurrency`` jobs at most, re-run on a mid-job poke."""

    def __init__(self, job: Callable[[uuid.UUID], Awaitable[None]], concurrency: int) -> None:
        self._job = job
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._again: set[uuid.UUID] = set()

    @property
    def busy(self) -> int:
        return len(self._tasks)

    def submit(self, key: uuid.UUID) -> None:
        if key in self._tasks:
            self._again.add(key)
            return
        self._tasks[key] = asyncio.create_task(self._run(key), name=f"job-{key}")

    async def _run(self, key: uuid.UUID) -> None:
        try:
            while True:
                self._again.discard(key)
                async with self._slots:
                    try:
                        await self._job(key)
                    except Exception:  # noqa: BLE001 - a job's bug must not stop the others
                        log.exception("job_crashed", key=str(key))
                if key not in self._again:
                    return
        finally:
            self._tasks.pop(key, None)

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109 - bounded shutdown wait
        """Let running jobs finish (each step is resumable, so cancelling is safe too)."""
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def sweep_loop(
    stop: asyncio.Event,
    name: str,
    interval: float,
    find: Callable[[], Awaitable[list[uuid.UUID]]],
    scheduler: Scheduler,
) -> None:
    """Every ``interval`` s, submit whatever the database says is unfinished."""
    failures = 0
    while not stop.is_set():
        try:
            for key in await find():
                scheduler.submit(key)
            failures = 0
        except Exception as exc:  # noqa: BLE001 - Postgres restarting: back off, keep going
            failures += 1
            log.warning("sweep_failed", worker=name, error=str(exc), failures=failures)
        await sleep_or_stop(stop, backoff_delay(failures + 1, base=interval, cap=30.0,
                                                jitter=0.05))


class WakeFilter:
    """Coalesce the feed's wake-ups and submit only the keys that have work.

    Most events need no job (a sale of a card with no NFT, a mint nobody bought
    meanwhile), yet a job costs a lock and several queries. Keys that arrive while a
    check runs are checked together next, so a burst of events costs one query per
    batch. When the check itself fails (Postgres restarting), every key is submitted:
    the jobs decide, and defer, as they would without the filter.
    """

    def __init__(
        self, scheduler: Scheduler, find: Callable[[list[uuid.UUID]], Awaitable[list[uuid.UUID]]],
        batch: int = 500,
    ) -> None:
        self._scheduler = scheduler
        self._find = find
        self._batch = batch
        self._pending: dict[uuid.UUID, None] = {}  # insertion-ordered set
        self._task: asyncio.Task[None] | None = None

    def submit(self, key: uuid.UUID) -> None:
        self._pending[key] = None
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush(), name="wake-filter")

    async def _flush(self) -> None:
        while self._pending:
            keys = list(self._pending)[: self._batch]
            for key in keys:
                del self._pending[key]
            try:
                due = await self._find(keys)
            except Exception as exc:  # noqa: BLE001 - let the jobs decide (and defer)
                log.warning("wake_filter_failed", keys=len(keys), error=str(exc)[:200])
                due = keys
            for key in due:
                self._scheduler.submit(key)

    async def settle(self) -> None:
        """Wait for a check in flight (on shutdown, before the scheduler drains)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
