"""The loop every worker shares: a cycle, a sleep that a stop request interrupts,
and backoff when the database or Redis is briefly unreachable.

A cycle that fails is logged and retried, never fatal: a worker that exits
because Postgres restarted would leave auctions open until someone noticed.
"""

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod

import structlog

log = structlog.get_logger("api.workers")

MAX_BACKOFF_S = 5.0


class Worker(ABC):
    """One periodic job. Subclasses implement :meth:`cycle` (and may shorten sleeps)."""

    name = "worker"

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.last_ok: float | None = None

    @abstractmethod
    async def cycle(self) -> None:
        """Do all work that is due now; each unit of work is its own transaction."""

    async def next_delay(self) -> float:
        """Seconds to sleep before the next cycle (the poll interval unless overridden)."""
        return self.interval_s

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                await self.cycle()
                self.last_ok = time.time()
                failures = 0
                delay = await self.next_delay()
            except Exception:  # noqa: BLE001 - keep the worker alive, report and back off
                failures += 1
                delay = min(self.interval_s * 2**failures, MAX_BACKOFF_S)
                log.exception("worker_cycle_failed", worker=self.name, failures=failures,
                              retry_in_s=delay)
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        log.info("worker_stopped", worker=self.name)
