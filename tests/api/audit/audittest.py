"""Helpers of the audit tests: sealing until drained, a sealer process, writers."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ece.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[3]


async def drain(key: bytes, batch: int = 1000, timeout: float = 30.0) -> int:  # noqa: ASYNC109
    """Seal in this process until nothing sealable is left; how many were sealed."""
    from api.audit.sealer import seal_batch
    from api.core.db import get_sessionmaker
    from api.core.uow import UnitOfWork

    total, deadline = 0, time.monotonic() + timeout
    async with get_sessionmaker()() as session:
        while time.monotonic() < deadline:
            async with UnitOfWork(session) as uow:
                n = await seal_batch(uow.session, key, batch)
            total += n
            if n == 0:
                return total
    raise AssertionError("sealing did not drain")


@dataclass
class Writer:
    """One transaction writing ``events`` audit events, committed or rolled back."""

    tag: str
    index: int
    events: int
    commit: bool
    started: float = 0.0  # just before the first INSERT (the xid is assigned there)
    committed: float = 0.0  # just after COMMIT returned
    ids: list[int] = field(default_factory=list)


async def run_writer(w: Writer, pause: float) -> None:
    from api.audit.chain import AuditContext, record
    from api.core.db import get_sessionmaker

    async with get_sessionmaker()() as session:
        w.started = time.monotonic()
        for k in range(w.events):
            ev = await record(session, AuditContext(ip="test"), "test.race", "race",
                              f"{w.tag}:{w.index}", {"tag": w.tag, "writer": w.index, "k": k})
            w.ids.append(ev.id)
            await asyncio.sleep(random.random() * pause)
        if w.commit:
            await session.commit()
            w.committed = time.monotonic()
        else:
            await session.rollback()


class SealerProcess:
    """``python -m api.workers --only audit`` as a real process (to be SIGKILLed)."""

    def __init__(self, settings: Settings, crash_at: str | None = None) -> None:
        env = dict(os.environ)
        env.pop("ECE_TEST_CRASH_AT", None)
        if crash_at:
            env["ECE_TEST_CRASH_AT"] = crash_at
        self.log_path = settings.logs_dir / f"test-audit-{uuid.uuid4().hex[:6]}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.workers", "--only", "audit"], env=env, cwd=REPO_ROOT,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    async def wait_exit(self, timeout: float) -> int:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"sealer still running after {timeout}s:\n{self.log()}")
            await asyncio.sleep(0.05)
        return int(self.proc.returncode)

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if not self._log.closed:
            self._log.close()


def seals_of(db: Any, tag: str) -> list[tuple[int, int, int]]:
    """(seq, event id, writer) of every sealed event written under ``tag``, by seq."""
    return [
        (int(r[0]), int(r[1]), int(r[2]))
        for r in db.rows(
            "SELECT s.seq, e.id, (e.details->>'writer')::int FROM audit_seals s "
            "JOIN audit_events e ON e.id = s.event_id WHERE e.details->>'tag' = %s "
            "ORDER BY s.seq", tag)
    ]


def assert_chain_shape(db: Any) -> None:
    """Seqs 1..n without gaps, one seal per event, head = last seal."""
    n, top, events = db.rows(
        "SELECT count(*), coalesce(max(seq), 0), count(DISTINCT event_id) FROM audit_seals")[0]
    assert n == top == events
    head = db.rows("SELECT seq, hash FROM audit_chain_head")[0]
    last = db.rows("SELECT seq, hash FROM audit_seals ORDER BY seq DESC LIMIT 1")
    assert (head[0], head[1]) == (last[0] if last else (0, "0" * 64))
