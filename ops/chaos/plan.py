"""Which parts ``ece chaos`` kills, in which order, and whether an ``ece up`` is there at all.

The order puts the stateless parts first and the ones whose restart ripples furthest
last: a killed broker is a new, empty epoch (CDC re-snapshots, the stream job is
restarted with it, the consumers rejoin), so it goes at the end, after Redis.
"""

from __future__ import annotations

from typing import Any

from ops.stack.supervision import supervisor_alive

DEFAULT_PARTS = ("api", "cdc", "flink", "workers", "chain-workers", "delivery", "dagster",
                 "redis", "broker")


class NoPlatform(RuntimeError):
    """No running ``ece up`` to rehearse on (or it recorded no pids)."""


def plan(state: dict[str, Any] | None, wanted: list[str]) -> tuple[list[str], dict[str, str]]:
    """The parts to kill (in ``wanted``'s order) and the skipped ones with the reason.

    A part is killable when the supervisor runs it and recorded its pid (an external
    part, or one not started with ``-p``, has none).
    """
    if not supervisor_alive(state):
        raise NoPlatform("no running `ece up` (data/ece-up.state.json has no live supervisor)")
    records: dict[str, dict[str, Any]] = (state or {}).get("parts") or {}
    kill, skipped = [], {}
    for name in wanted:
        record = records.get(name)
        if record is None:
            skipped[name] = "not started by this `ece up`"
        elif not isinstance(record.get("pid"), int):
            skipped[name] = f"no pid recorded (state {record.get('state')})"
        else:
            kill.append(name)
    if not kill:
        raise NoPlatform(f"none of {', '.join(wanted)} runs under this `ece up`")
    return kill, skipped
