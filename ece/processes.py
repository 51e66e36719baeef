"""Process probes shared by the API (its workers' metrics files) and the stack supervisor."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (signal 0 probes without touching it; a
    process of another user still counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
