"""A background process of the platform run by a test, to be waited for or SIGKILLed.

The NFT crash tests and the audit sealer tests both start ``python -m api.workers...``
as a real process (own session, so the whole group can be killed), optionally with
the ``ECE_TEST_CRASH_AT`` hook, and read its log when something goes wrong.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from ece.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]


class TestProcess:
    """``python -m <module> [args]`` with this session's environment, logging to a file."""

    __test__ = False  # not a test class, whatever its name says to pytest

    def __init__(self, settings: Settings, module: str, *args: str, label: str,
                 crash_at: str | None = None) -> None:
        env = dict(os.environ)
        env.pop("ECE_TEST_CRASH_AT", None)
        if crash_at:
            env["ECE_TEST_CRASH_AT"] = crash_at
        self.label = label
        self.log_path = settings.logs_dir / f"test-{label}-{uuid.uuid4().hex[:6]}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()/kill()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args], env=env, cwd=REPO_ROOT,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    async def wait_exit(self, timeout: float) -> int:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.label} still running after {timeout}s:\n{self.log()}")
            await asyncio.sleep(0.05)
        return int(self.proc.returncode)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if not self._log.closed:
            self._log.close()
