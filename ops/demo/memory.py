"""Memory of the running platform: PSS per part, for the soak's "memory stays flat".

PSS (proportional set size, ``/proc/<pid>/smaps_rollup``) counts a shared page once
across the processes sharing it, so summing it over a part's process group (uvicorn's
workers, the JVM under its Python) neither misses a worker nor counts libraries twice.
The parts' pids are the ones ``ece up`` records in ``data/ece-up.state.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ece.settings import Settings
from ops.stack.base import live_group_members
from ops.stack.supervision import read_state


@dataclass
class MemorySample:
    """PSS in KiB per part at one moment of the run (``at_s`` seconds into the traffic)."""

    label: str
    at_s: float
    pss_kib: dict[str, int] = field(default_factory=dict)

    @property
    def total_kib(self) -> int:
        return sum(self.pss_kib.values())


def pss_kib(pid: int) -> int:
    """One process's PSS in KiB (0 when it is gone or unreadable)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def platform_pss(settings: Settings) -> dict[str, int]:
    """PSS per part of the running ``ece up`` (each part's whole process group)."""
    state = read_state(settings) or {}
    out: dict[str, int] = {}
    for name, record in sorted((state.get("parts") or {}).items()):
        pid = record.get("pid")
        if isinstance(pid, int):
            out[name] = sum(pss_kib(member) for member in live_group_members(pid) or [pid])
    return out


class MemorySampler:
    """Takes labelled samples relative to the moment it was created."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started = time.monotonic()
        self.samples: list[MemorySample] = []

    def sample(self, label: str) -> MemorySample:
        taken = MemorySample(label, time.monotonic() - self.started, platform_pss(self.settings))
        self.samples.append(taken)
        return taken
