"""`ece up` keeps the platform running: kill -9 a part and it comes back (restart count 1
in `ece status`); kill one five times within five minutes and the platform stops, saying why.

Runs a real `ece up` (its own data folder and free ports), as a user would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ece.settings import Settings
from ops.stack.supervision import read_state
from ops.stack.supervisor import free_port_environment

pytestmark = pytest.mark.e2e


# `ece up --part workers` (postgres, redis, migrate, workers) on the test's free ports.
# Addresses set in the environment would mean "external service", so the launcher treats
# none as external (what `--free-ports` does, with ports the test knows and `ece status`
# can be given).
UP = ("import ops.cli.stack as stack; stack.externals_from_environment = lambda *a: set(); "
      "from ops.cli import app; app(['up', '--part', 'workers'])")


@pytest.fixture
def stack_env() -> Iterator[dict[str, str]]:
    data_dir = Path(tempfile.mkdtemp(prefix="ece-test-supervise-"))
    data_dir.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "COLUMNS": "250", "HOME": os.environ.get("HOME", "/root"),
           "ECE_ENV": "test", "ECE_DATA_DIR": str(data_dir), "ECE_SEED": "0",
           **free_port_environment()}
    try:
        yield env
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _settings(env: dict[str, str]) -> Settings:
    fields = {k.removeprefix("ECE_").lower(): v for k, v in env.items() if k.startswith("ECE_")}
    return Settings(**fields)


def _wait(check: Any, timeout: float, what: str, up: subprocess.Popen[str]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if up.poll() is not None:
            raise AssertionError(f"ece up exited ({up.returncode}) waiting for {what}:\n"
                                 f"{up.stdout.read() if up.stdout else ''}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _running(settings: Settings, part: str, restarts: int) -> int | None:
    """The part's pid once the state file says it runs after ``restarts`` restarts."""
    state = read_state(settings) or {}
    record = (state.get("parts") or {}).get(part) or {}
    if record.get("state") == "running" and record.get("restarts") == restarts:
        return record.get("pid")  # type: ignore[no-any-return]
    return None


def _status_row(env: dict[str, str], part: str) -> str:
    status = subprocess.run([sys.executable, "-m", "ops", "status"], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    return next(line for line in status.stdout.splitlines() if line.startswith(f"│ {part} "))


def test_killed_part_is_restarted_and_a_crash_loop_stops_the_platform(
        stack_env: dict[str, str]) -> None:
    settings = _settings(stack_env)
    up = subprocess.Popen([sys.executable, "-c", UP], env=stack_env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    try:
        redis_pid = _wait(lambda: _running(settings, "redis", 0), 240, "redis running", up)
        workers_pid = _wait(lambda: _running(settings, "workers", 0), 60, "workers", up)
        killed = time.monotonic()
        os.killpg(redis_pid, signal.SIGKILL)
        new_pid = _wait(lambda: _running(settings, "redis", 1), 90, "redis restarted", up)
        print(f"redis healed in {time.monotonic() - killed:.1f}s")
        assert new_pid != redis_pid
        # The workers reconnect by themselves: their heartbeat is back in the new Redis.
        _wait(lambda: _status_row(stack_env, "workers").count("│ yes"), 60, "workers", up)
        print(f"workers beating into the new redis {time.monotonic() - killed:.1f}s after")
        row = _status_row(stack_env, "redis")
        assert "│ yes" in row and "killed by SIGKILL" in row, row
        assert [cell.strip() for cell in row.split("│")][4] == "1", row
        assert _running(settings, "workers", 0) == workers_pid  # untouched

        # A crash loop: the workers killed each time they are back, five times.
        for restarts in range(5):
            pid = _wait(lambda r=restarts: _running(settings, "workers", r), 90,  # type: ignore[misc]
                        f"workers after {restarts} restarts", up)
            assert restarts or pid == workers_pid
            os.killpg(pid, signal.SIGKILL)
            if restarts == 4:
                break
        out, _ = up.communicate(timeout=180)
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            up.communicate(timeout=120)
    assert up.returncode == 1, out
    assert "workers crashed 5 times within 300s" in out, out
    assert "everything stopped" in out, out
    state = read_state(settings) or {}
    assert "workers crashed 5 times" in state["stopped_reason"]
    assert state["parts"]["workers"]["state"] == "failed"
    status = subprocess.run([sys.executable, "-m", "ops", "status"], env=stack_env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert "last `ece up` ended: workers crashed 5 times" in status.stdout, status.stdout
