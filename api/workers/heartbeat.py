"""The workers' liveness signal in Redis, read by the stack part and ``ece status``.

Each process writes ``ece:workers:heartbeat:<pid>`` (a short TTL, refreshed every
second) once every worker it runs has finished a first cycle against the
database, so "heartbeat present" means "this process is doing its job", not just
"this process started".
"""

import json
import time

HEARTBEAT_PREFIX = "ece:workers:heartbeat:"
HEARTBEAT_TTL_S = 10
READY_MARKER = "workers_ready"


def heartbeat_key(pid: int) -> str:
    return f"{HEARTBEAT_PREFIX}{pid}"


def heartbeat_value(pid: int, workers: dict[str, float]) -> str:
    """JSON ``{pid, at, workers: {name: last successful cycle (epoch s)}}``."""
    return json.dumps({"pid": pid, "at": time.time(), "workers": workers}, sort_keys=True)
