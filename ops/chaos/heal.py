"""Waiting until a killed part is back: the supervisor's word and the parts' own checks.

Healed means, all at once: the state file shows the part ``running`` again under a
new pid with one restart more than before the kill, and every part the supervisor
runs answers its health check (the same checks ``ece status`` makes), because a
restarted Redis or broker is only "back" once the parts that use it are working
again. The wait is bounded and polls with backoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ece.retry import backoff_delay
from ece.settings import Settings
from ops.chaos.kill import Kill, record_of
from ops.stack.supervision import read_state
from ops.stack.supervisor import Platform

FOLLOWER_GRACE_S = 2.0  # back this long before "healed": the followers are marked by then


@dataclass
class Healed:
    kill: Kill
    ok: bool
    seconds: float
    restarts: int
    new_pid: int | None = None
    unhealthy: dict[str, str] = field(default_factory=dict)  # what was still wrong at the end
    seen_states: list[str] = field(default_factory=list)  # the part's states in the file


def platform_health(settings: Settings) -> dict[str, tuple[bool, str]]:
    """Each supervised part's health, as ``ece status`` computes it (never raises)."""
    parts: dict[str, dict[str, object]] = (read_state(settings) or {}).get("parts") or {}
    # External means what the supervisor only health-checks: it recorded no pid for it.
    platform = Platform(settings, {n for n, r in parts.items() if r.get("pid") is None})
    out = {}
    for name in parts:
        if name == "migrate":
            continue
        try:
            out[name] = platform.part(name).health()
        except Exception as exc:  # noqa: BLE001 - an unhealthy part, reported
            out[name] = (False, f"{type(exc).__name__}: {exc}")
    return out


def _restarted(settings: Settings, kill: Kill, seen: list[str]) -> tuple[bool, int, int | None]:
    record = record_of(settings, kill.part)
    state = str(record.get("state"))
    if not seen or seen[-1] != state:
        seen.append(state)
    restarts = record.get("restarts")
    count = restarts if isinstance(restarts, int) else 0
    pid = record.get("pid")
    new_pid = pid if isinstance(pid, int) else None
    back = state == "running" and count > kill.restarts_before and new_pid not in (None, kill.pid)
    return back, count, new_pid


def wait_healed(settings: Settings, kill: Kill, timeout: float,
                say: Callable[[str], None] = lambda _m: None) -> Healed:
    """Poll until healed or ``timeout`` seconds after the kill (then ``ok`` is False)."""
    seen: list[str] = []
    attempt = 0
    unhealthy: dict[str, str] = {}
    count, new_pid = kill.restarts_before, None
    back_since: float | None = None
    while True:
        attempt += 1
        state = read_state(settings) or {}
        if state.get("stopped_reason") and not state.get("supervisor_pid"):
            unhealthy = {"ece up": str(state["stopped_reason"])}
            break
        back, count, new_pid = _restarted(settings, kill, seen)
        back_since = (back_since or time.monotonic()) if back else None
        if back_since is not None:
            # The supervisor marks the followers it restarts next (the stream job after
            # the broker or Redis) "restarting" right after the part itself is back.
            records = state.get("parts") or {}
            unhealthy = {name: f"state {r.get('state')}" for name, r in records.items()
                         if r.get("state") not in ("running", "stopped")}
            health = platform_health(settings)
            unhealthy.update({name: detail for name, (ok, detail) in health.items() if not ok})
            if not unhealthy and time.monotonic() - back_since >= FOLLOWER_GRACE_S:
                return Healed(kill, True, time.monotonic() - kill.at, count, new_pid,
                              {}, seen)
        else:
            unhealthy = {kill.part: f"state {seen[-1] if seen else '?'}, restarts {count}"}
        if time.monotonic() - kill.at > timeout:
            break
        if attempt % 10 == 0:
            say(f"  {kill.part}: waiting ({', '.join(unhealthy)} not healthy yet) ...")
        time.sleep(backoff_delay(attempt, base=0.25, cap=3.0))
    return Healed(kill, False, time.monotonic() - kill.at, count, new_pid, unhealthy, seen)
