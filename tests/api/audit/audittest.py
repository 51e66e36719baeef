"""Helpers of the audit tests: sealing until drained, a sealer process, writers."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

from ece.settings import Settings
from tests.support.processes import TestProcess


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


class SealerProcess(TestProcess):
    """``python -m api.workers --only audit`` as a real process (to be SIGKILLed)."""

    def __init__(self, settings: Settings, crash_at: str | None = None) -> None:
        super().__init__(settings, "api.workers", "--only", "audit", label="audit",
                         crash_at=crash_at)


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
