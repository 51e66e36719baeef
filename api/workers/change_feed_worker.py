"""Change-feed workers (mint saga, chain transfers) in the shared workers process.

They run their own loops (a Kafka feed plus a Postgres sweep) rather than periodic
cycles; this adapter lets them share the process, the signal handling and the
heartbeat with the polling workers.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import structlog

from api.workers.loop import Worker
from ece.settings import Settings, get_settings

log = structlog.get_logger("api.workers")
MAX_BACKOFF_S = 30.0

RunFunction = Callable[[Settings, asyncio.Event], Awaitable[None]]


class ChangeFeedWorker(Worker):
    """Runs ``run(settings, stop)`` until stop; alive as long as that coroutine is."""

    def __init__(self, name: str, run: RunFunction) -> None:
        super().__init__(interval_s=1.0)
        self.name = name
        self._run = run

    async def cycle(self) -> None:  # pragma: no cover - the feed loop replaces cycles
        return None

    async def run(self, stop: asyncio.Event) -> None:
        """Restart the loop with capped exponential backoff if it dies (RPC or broker
        down at start-up, say), logging each failure as an error so it is never silent."""
        failures = 0
        while not stop.is_set():
            self.last_ok = time.time()
            try:
                await self._run(get_settings(), stop)
                return
            except Exception as exc:  # noqa: BLE001 - any crash is retried and logged
                failures += 1
                delay = min(MAX_BACKOFF_S, 0.5 * 2**failures)
                log.error("worker_crashed", worker=self.name, failures=failures,
                          retry_in_s=delay, error=f"{type(exc).__name__}: {exc}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
