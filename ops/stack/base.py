"""What every part of the local stack shares: processes, logs, readiness, failure reports."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ece.processes import pid_alive  # noqa: F401 - re-exported for ops
from ece.settings import Settings


class PartFailed(RuntimeError):
    """A part could not start: names it, says why and how to fix it."""

    def __init__(self, part: str, reason: str, fix: str = "", log: Path | None = None) -> None:
        self.part, self.reason, self.fix, self.log = part, reason, fix, log
        lines = [f"{part} failed: {reason}"]
        if fix:
            lines.append(f"  fix: {fix}")
        if log is not None:
            lines.append(f"  log: {log}")
            tail = tail_of(log)
            if tail:
                lines.append("  last log lines:\n" + "\n".join(f"    {t}" for t in tail))
        super().__init__("\n".join(lines))


def tail_of(path: Path, lines: int = 15) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def free_port() -> int:
    """A port nothing listens on now (the test session starts the stack on these)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    part: str,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    fix: str = "",
) -> None:
    """Poll ``check`` until true; fail fast (with the log tail) if the process died."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise PartFailed(part, f"exited with code {proc.returncode} before {what}", fix, log)
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - readiness probes fail in many ways while starting
            pass
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    raise PartFailed(part, f"not ready after {timeout:.0f}s ({what})", fix, log)


@dataclass
class ManagedProcess:
    """A child process with its own log file, stopped with a signal and then killed."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 20.0
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _log: IO[bytes] | None = field(default=None, init=False)

    def start(self) -> subprocess.Popen[bytes]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        env = {**os.environ, **(self.env or {})}  # a child's environment: PATH, HOME, ECE_*
        self.proc = subprocess.Popen(
            list(self.argv),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.cwd,
            user=self.user,
            group=self.user,
            start_new_session=True,  # Ctrl-C in the terminal goes to the supervisor only
        )
        return self.proc

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, self.stop_signal)
            try:
                self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # The group may hold grandchildren (Flink's JVM, Dagster's workers): end them too,
        # and wait until they are really gone, so "stopped" means nothing is left running.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while live_group_members(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._log is not None:
            self._log.close()
            self._log = None


def live_group_members(pgid: int) -> list[int]:
    """Processes of a process group that are not yet zombies (read from /proc)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


class Part:
    """One part of the platform. Subclasses start, check and stop it.

    ``external`` parts were pointed at a service someone else runs: the supervisor
    only checks their health and never starts or stops them.
    """

    name: str = "part"
    depends_on: tuple[str, ...] = ()
    # Restart this part whenever the supervisor restarts one of these (state tied to theirs).
    restart_with: tuple[str, ...] = ()

    def __init__(self, settings: Settings, *, external: bool = False) -> None:
        self.settings = settings
        self.process: ManagedProcess | None = None
        self._external = external

    @property
    def external(self) -> bool:
        return self._external

    @property
    def url(self) -> str:
        return ""

    @property
    def log_path(self) -> Path:
        return self.settings.logs_dir / f"{self.name}.log"

    def start(self) -> None:
        raise NotImplementedError

    def health(self) -> tuple[bool, str]:
        raise NotImplementedError

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def after_restart(self) -> None:
        """Called by the supervisor after it restarted this part, before the parts that
        restart with it (``restart_with``): the place to reset what they derive from it."""

    def child_environment(self) -> dict[str, str]:
        """The settings this part was given, as ``ECE_*`` for its process.

        They override whatever the parent's environment says, so a part built from an
        explicit Settings (a second platform in a test, a benchmark) runs where asked.
        """
        return self.settings.as_environment()

    def died(self) -> bool:
        """True when we started the process and it is gone (reported by the supervisor).

        ``stop()`` drops the process, so a deliberately stopped part never counts as dead.
        """
        return self.process is not None and not self.process.alive


def require_binary(part: str, binary: str, fix: str) -> str:
    found = shutil.which(binary) or (binary if Path(binary).exists() else None)
    if not found:
        raise PartFailed(part, f"{binary} not found", fix)
    return found
