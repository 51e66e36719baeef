"""The runner's status file: how the supervisor learns that CDC is streaming.

``pg_replication_slots.active`` alone cannot tell *our* runner from a walsender a
killed runner left behind, nor which broker epoch was filled; the runner writes
its pid, state and the epoch it streams into, atomically.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ece.settings import Settings


@dataclass(frozen=True)
class CdcStatus:
    pid: int
    state: str  # starting | snapshotting | streaming | stopped | failed
    cluster_id: str
    detail: str = ""
    at: float = 0.0


def status_path(settings: Settings) -> Path:
    return settings.data_dir / "run" / "cdc.json"


def write_status(settings: Settings, state: str, cluster_id: str = "", detail: str = "") -> None:
    path = status_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    status = CdcStatus(os.getpid(), state, cluster_id, detail, time.time())
    tmp.write_text(json.dumps(asdict(status)))
    tmp.replace(path)


def read_status(settings: Settings) -> CdcStatus | None:
    try:
        return CdcStatus(**json.loads(status_path(settings).read_text()))
    except (OSError, ValueError, TypeError):
        return None
