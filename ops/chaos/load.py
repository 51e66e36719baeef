"""``ece demo`` traffic in the background while parts are killed.

The demo runs in its own thread and event loop (``ops.demo.traffic.run_demo``, the
same code ``ece demo`` runs), until ``stop()``; the kills happen on the caller's
thread, which only waits and reads files. Requests that fail while a part is down
are counted as errors by the demo and are expected here: what must hold is what
the data says afterwards, not that no request failed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from ece.settings import Settings
from ops.demo.client import api_base
from ops.demo.report import DemoReport

LONGEST_RUN_S = 6 * 3600.0  # the demo's deadline; ``stop()`` ends it long before


class LoadFailed(RuntimeError):
    """The demo could not set up (API down, no admin) or its thread died."""


class BackgroundLoad:
    """One ``ece demo`` run in a thread: :meth:`start` returns once traffic flows."""

    def __init__(self, settings: Settings, *, users: int, cards: int, concurrency: int,
                 user_rps: float, say: Callable[[str], None], seed: int | None = None) -> None:
        self.settings = settings
        self.options = {"users": users, "cards": cards, "concurrency": concurrency,
                        "user_rps": user_rps, "seed": seed}
        self.say = say
        self._stop = threading.Event()
        self._flowing = threading.Event()
        self.report: DemoReport | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="chaos-load", daemon=True)

    def _line(self, line: str) -> None:
        if line.startswith("driving traffic"):
            self._flowing.set()
        if not line.startswith("["):  # the 5-second progress lines would drown the kills
            self.say(f"  load: {line}")

    def _run(self) -> None:
        from ops.demo.traffic import run_demo
        from ops.seed import ensure_admin

        try:
            login, password = ensure_admin(self.settings)
            self.report = asyncio.run(run_demo(
                api=api_base(self.settings), admin_login=login or "admin",
                admin_password=password, seconds=LONGEST_RUN_S,
                database_url=self.settings.database_url, say=self._line,
                stop=self._stop.is_set, **self.options))  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self.error = exc
        finally:
            self._flowing.set()

    def start(self, timeout: float = 600.0) -> None:
        self._thread.start()
        if not self._flowing.wait(timeout):
            raise LoadFailed(f"the demo did not start its traffic within {timeout:.0f}s")
        if self.error is not None:
            raise LoadFailed(f"the demo could not start: {self.error}") from self.error

    def stop(self, timeout: float = 300.0) -> DemoReport:
        """End the traffic, wait for the demo's invariants, return its report."""
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise LoadFailed(f"the demo did not stop within {timeout:.0f}s")
        if self.error is not None or self.report is None:
            raise LoadFailed(f"the demo failed: {self.error}") from self.error
        return self.report
