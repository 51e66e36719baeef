"""Keeping started parts running: restart a crashed part with backoff, stop on a crash loop.

A *crash* is a part whose process is gone although nobody stopped it: ``Part.stop()``
drops the process (``part.process`` becomes None), so a deliberately stopped part is
never restarted. Each crash is logged with its exit reason and the part is restarted
after ``restart_delay(attempt)`` (1 s, 2 s, 4 s, ... capped at 30 s; the attempt count
starts again once a part ran ``STABLE_AFTER_S`` without crashing). A part that crashes
``CRASH_LIMIT`` times within ``CRASH_WINDOW_S`` raises :class:`CrashLoop`, and the
caller (``ece up``) stops the platform with that reason.

Parts whose state belongs to another part's lifetime are restarted with it
(``Part.restart_with``; the leader's ``after_restart`` runs first): the stream job reads the
broker's epoch once at start, so a restarted (new, empty) broker means a restarted job;
a restarted local Redis is empty, so the job rebuilds the hot set it derived into it.

The state (restart count, last exit reason, pid, state) is written atomically to
``<data_dir>/ece-up.state.json`` after every change, so ``ece status`` in another
terminal can show it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from ece.retry import backoff_delay
from ece.settings import Settings
from ops.stack.base import Part, PartFailed, pid_alive

if TYPE_CHECKING:
    from ops.stack.supervisor import Platform

log = structlog.get_logger("ops.stack.supervision")

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 30.0
CRASH_LIMIT = 5
CRASH_WINDOW_S = 300.0
STABLE_AFTER_S = 300.0


def restart_delay(attempt: int) -> float:
    """Seconds before restart number ``attempt`` (1-based) of one crash streak."""
    return backoff_delay(attempt, base=BACKOFF_BASE_S, cap=BACKOFF_CAP_S, jitter=0.0)


def exit_reason(returncode: int | None) -> str:
    if returncode is None:
        return "process gone"
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
        return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


def state_path(settings: Settings) -> Path:
    return settings.data_dir / "ece-up.state.json"


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Replace ``path`` atomically: a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.replace(tmp, path)


def read_state(settings: Settings) -> dict[str, Any] | None:
    """The supervisor's last state, or None (no file, or unreadable)."""
    try:
        state = json.loads(state_path(settings).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def supervisor_alive(state: dict[str, Any] | None) -> bool:
    """The state file was written by an ``ece up`` that still runs."""
    pid = (state or {}).get("supervisor_pid")
    return isinstance(pid, int) and pid_alive(pid)


def _iso(wall: float | None) -> str | None:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds") if wall else None


@dataclass
class PartRecord:
    """What the supervisor knows about one part (the public half goes to the state file)."""

    state: str = "running"  # running | restarting | stopped | failed
    pid: int | None = None
    restarts: int = 0
    last_exit: str | None = None
    last_exit_at: str | None = None
    last_restart_at: str | None = None
    crashes: list[float] = field(default_factory=list)  # monotonic times, in the window
    attempt: int = 0
    started_at: float = 0.0
    restart_due: float | None = None

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        for private in ("crashes", "attempt", "started_at", "restart_due"):
            data.pop(private)
        data["crashes_in_window"] = len(self.crashes)
        return data


class CrashLoop(RuntimeError):
    """A part crashed ``CRASH_LIMIT`` times within ``CRASH_WINDOW_S``: the platform stops."""

    def __init__(self, part: Part, record: PartRecord) -> None:
        self.part, self.record = part.name, record
        super().__init__(
            f"{part.name} crashed {len(record.crashes)} times within {CRASH_WINDOW_S:.0f}s "
            f"(last: {record.last_exit}); stopping the platform. log: {part.log_path}")


def _pid(part: Part) -> int | None:
    if part.process is None or part.process.proc is None:
        return None
    return part.process.proc.pid


class Supervisor:
    """Watches a :class:`Platform`'s started parts; call :meth:`tick` about once a second."""

    def __init__(self, platform: Platform, say: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.platform = platform
        self.records: dict[str, PartRecord] = {}
        self.stopped_reason: str | None = None
        self._say = say or (lambda _msg: None)
        self._clock, self._wall = clock, wall
        self._path = state_path(platform.settings)

    def record(self, part: Part) -> PartRecord:
        if part.name not in self.records:
            self.records[part.name] = PartRecord(pid=_pid(part), started_at=self._clock())
        return self.records[part.name]

    def begin(self) -> None:
        for part in self.platform.started:
            record = self.record(part)
            record.pid, record.state = _pid(part), "running"
        self.save()

    def save(self) -> None:
        parts = {}
        for part in self.platform.started:
            record = self.record(part)
            if record.state == "running":
                record.pid = _pid(part)
            parts[part.name] = record.public()
        write_state(self._path, {
            "supervisor_pid": os.getpid(), "updated_at": _iso(self._wall()),
            "stopped_reason": self.stopped_reason, "parts": parts,
        })

    def finish(self, reason: str | None = None) -> None:
        """The platform stopped (Ctrl-C, ``ece down`` or a crash loop): say so in the file."""
        self.stopped_reason = reason or self.stopped_reason or "stopped"
        for record in self.records.values():
            if record.state != "failed":
                record.state = "stopped"
            record.pid = None
        parts = {name: record.public() for name, record in self.records.items()}
        write_state(self._path, {
            "supervisor_pid": None, "updated_at": _iso(self._wall()),
            "stopped_reason": self.stopped_reason, "parts": parts,
        })

    def crashed(self, part: Part, reason: str) -> None:
        """Count a crash of ``part``, schedule its restart, or raise :class:`CrashLoop`."""
        now = self._clock()
        record = self.record(part)
        record.crashes = [t for t in record.crashes if now - t < CRASH_WINDOW_S] + [now]
        if now - record.started_at >= STABLE_AFTER_S:
            record.attempt = 0  # it ran long enough: a new streak starts at 1 s
        record.attempt += 1
        record.last_exit, record.last_exit_at = reason, _iso(self._wall())
        record.pid = None
        if len(record.crashes) >= CRASH_LIMIT:
            record.state, record.restart_due = "failed", None
            log.error("part_crash_loop", part=part.name, crashes=len(record.crashes),
                      window_s=CRASH_WINDOW_S, last_exit=reason)
            self.stopped_reason = str(CrashLoop(part, record))
            self.save()
            raise CrashLoop(part, record)
        delay = restart_delay(record.attempt)
        record.state, record.restart_due = "restarting", now + delay
        log.warning("part_crashed", part=part.name, reason=reason, restart_in_s=delay,
                    crashes_in_window=len(record.crashes), log=str(part.log_path))
        self._say(f"{part.name} crashed ({reason}); restarting in {delay:.0f}s")
        self.save()

    def _restart(self, part: Part, why: str) -> bool:
        record = self.record(part)
        self._say(f"restarting {part.name} ({why}) ...")
        if record.state == "running":  # a follower: say so while it is down (`ece status`)
            record.state = "restarting"
            self.save()
        with contextlib.suppress(Exception):
            part.stop()  # reap the dead process, close its log, end what is left of its group
        try:
            part.start()
        except Exception as exc:  # noqa: BLE001 - a failed restart is one more crash
            reason = exc.reason if isinstance(exc, PartFailed) else f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):
                part.stop()
            self.crashed(part, f"restart failed: {reason}")
            return False
        record.restarts += 1
        record.state, record.restart_due = "running", None
        record.started_at, record.pid = self._clock(), _pid(part)
        record.last_restart_at = _iso(self._wall())
        log.info("part_restarted", part=part.name, restarts=record.restarts, pid=record.pid,
                 why=why)
        self._say(f"{part.name} restarted (restart {record.restarts}) {part.url}".rstrip())
        self.save()
        return True

    def tick(self) -> None:
        """Notice crashes, restart parts whose backoff is over (raises :class:`CrashLoop`)."""
        for part in list(self.platform.started):
            record = self.record(part)
            if record.state == "running" and part.died():
                proc = part.process.proc if part.process is not None else None
                self.crashed(part, exit_reason(proc.returncode if proc is not None else None))
        now = self._clock()
        for part in list(self.platform.started):
            record = self.record(part)
            if record.state != "restarting" or record.restart_due is None:
                continue
            if now < record.restart_due:
                continue
            if self._restart(part, f"after {record.last_exit}"):
                self._restart_followers(part)

    def _restart_followers(self, leader: Part) -> None:
        try:
            leader.after_restart()
        except Exception as exc:  # noqa: BLE001 - the followers still restart
            log.warning("after_restart_failed", part=leader.name, error=str(exc))
        for part in list(self.platform.started):
            if leader.name in part.restart_with and self.record(part).state == "running":
                self._restart(part, f"{leader.name} was restarted")

    def run(self, should_stop: Callable[[], bool], interval: float = 0.5) -> None:
        """Tick until ``should_stop()``; :class:`CrashLoop` propagates."""
        self.begin()
        while not should_stop():
            self.tick()
            time.sleep(interval)
