"""kill -9 one part: SIGKILL to its whole process group, as a crash would end it.

Every part runs in its own session (``ManagedProcess``: ``start_new_session``), so
its pid is also its process group id and the group holds what it started: the
Flink JVM under its Python, uvicorn's worker processes, Dagster's code server, webserver
and daemon. Killing only the leader would leave those running, which is not what
a crashed machine or an OOM kill of the part looks like.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from ece.settings import Settings
from ops.stack.supervision import read_state


@dataclass
class Kill:
    part: str
    pid: int
    restarts_before: int
    at: float  # monotonic, to time the heal
    wall: str  # when, for the table (UTC, seconds)


def record_of(settings: Settings, part: str) -> dict[str, object]:
    state = read_state(settings) or {}
    return dict((state.get("parts") or {}).get(part) or {})


def kill_part(settings: Settings, part: str) -> Kill:
    """SIGKILL the part's process group (or its pid, if it leads no group)."""
    record = record_of(settings, part)
    pid = record.get("pid")
    if not isinstance(pid, int):
        raise RuntimeError(f"{part}: no pid in the supervisor's state ({record.get('state')})")
    restarts = record.get("restarts")
    before = restarts if isinstance(restarts, int) else 0
    try:
        leads_group = os.getpgid(pid) == pid
    except ProcessLookupError as exc:
        raise RuntimeError(f"{part}: pid {pid} is not running") from exc
    at = time.monotonic()
    if leads_group:
        os.killpg(pid, signal.SIGKILL)
    else:
        os.kill(pid, signal.SIGKILL)
    wall = datetime.now(UTC).strftime("%H:%M:%S")
    return Kill(part, pid, before, at, wall)
