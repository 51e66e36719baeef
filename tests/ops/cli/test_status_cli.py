"""`ece status` from another terminal: it sees the parts `ece up` started."""

import subprocess
import sys
from typing import Any


def _row(output: str, part: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(f"│ {part} "))


def test_status_reports_running_parts_and_missing_ones(platform: Any) -> None:
    platform.require("workers")  # postgres, redis, migrate and the marketplace workers
    done = subprocess.run([sys.executable, "-m", "ops", "status"], capture_output=True,
                          text=True, timeout=120, check=False, env={
                              "PATH": "/usr/bin:/bin", "COLUMNS": "200",
                              **platform.settings.as_environment()})
    assert done.returncode == 1, done.stdout  # not every part runs in this session
    for running in ("postgres", "redis", "workers"):
        assert "│ yes" in _row(done.stdout, running), done.stdout
    assert "│ no" in _row(done.stdout, "dagster"), done.stdout
