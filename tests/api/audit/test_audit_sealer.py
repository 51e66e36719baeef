"""The audit chain without a global lock: racing writers, a SIGKILLed sealer.

Writers INSERT unsealed events (no lock); the sealer chains the committed ones.
Every committed event must be sealed exactly once, rolled-back ones never, and
the order must respect commit: a transaction that committed before another began
writing comes first in the chain; each transaction's events are contiguous.
"""

from __future__ import annotations

import asyncio
import random
import signal

from ece.settings import Settings
from tests.api.audit.audittest import (
    SealerProcess,
    Writer,
    assert_chain_shape,
    drain,
    run_writer,
    seals_of,
)
from tests.support.apitest import Db, unique


async def test_record_takes_no_lock_and_leaves_the_event_unsealed(
    api_settings: Settings, db: Db
) -> None:
    """Two open transactions both append; neither waits for the other."""
    from api.audit.chain import AuditContext, record
    from api.core.db import get_sessionmaker

    maker = get_sessionmaker()
    async with maker() as a, maker() as b:
        ea = await asyncio.wait_for(record(a, AuditContext(), "test.nolock", "x", "a"), 5)
        eb = await asyncio.wait_for(record(b, AuditContext(), "test.nolock", "x", "b"), 5)
        await b.commit()
        await a.commit()
    row = db.rows("SELECT xid, hash FROM audit_events WHERE id = %s", eb.id)[0]
    assert row[0] > 0 and row[1] is None  # stamped with its transaction, not sealed
    assert db.value("SELECT count(*) FROM audit_seals WHERE event_id IN (%s, %s)",
                    ea.id, eb.id) == 0
    await drain(api_settings.audit_key)
    assert db.value("SELECT count(*) FROM audit_seals WHERE event_id IN (%s, %s)",
                    ea.id, eb.id) == 2


async def test_racing_writers_are_sealed_once_in_commit_order(
    api_settings: Settings, db: Db
) -> None:
    from api.audit.verify import verify_chain
    from api.core.db import get_sessionmaker

    tag = unique("race")
    writers = [Writer(tag, i, random.randint(1, 3), commit=i % 5 != 0) for i in range(60)]
    stop = asyncio.Event()

    async def sealing() -> None:  # two sealers at once: the head row lets one in at a time
        while not stop.is_set():
            await drain(api_settings.audit_key, batch=7)
            await asyncio.sleep(0.01)

    async def writing() -> None:
        sem = asyncio.Semaphore(16)

        async def one(w: Writer) -> None:
            async with sem:
                await asyncio.sleep(random.random() * 0.05)
                await run_writer(w, pause=0.02)

        await asyncio.gather(*(one(w) for w in writers))

    sealers = [asyncio.create_task(sealing()) for _ in range(2)]
    await writing()
    await drain(api_settings.audit_key)
    stop.set()
    await asyncio.gather(*sealers)

    committed = [w for w in writers if w.commit]
    sealed = seals_of(db, tag)
    expected = sorted(i for w in committed for i in w.ids)
    assert sorted(e for _, e, _ in sealed) == expected  # each committed event, once
    rolled_back = [i for w in writers if not w.commit for i in w.ids]
    assert db.value("SELECT count(*) FROM audit_events WHERE id = ANY(%s)", rolled_back) == 0
    assert_chain_shape(db)

    position = {e: seq for seq, e, _ in sealed}
    first = {w.index: min(position[i] for i in w.ids) for w in committed}
    last = {w.index: max(position[i] for i in w.ids) for w in committed}
    for w in committed:  # one transaction's events: contiguous, in insertion order
        seqs = [position[i] for i in w.ids]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    pairs = 0
    for a in committed:
        for b in committed:
            if a.committed < b.started:
                pairs += 1
                assert last[a.index] < first[b.index], (a, b)
    assert pairs > 0
    async with get_sessionmaker()() as session:
        report = await verify_chain(session, api_settings.audit_key)
    assert report.ok, report.problem
    assert report.checked == db.value("SELECT count(*) FROM audit_seals")


async def test_sigkilled_sealer_loses_nothing_and_seals_nothing_twice(
    api_settings: Settings, db: Db
) -> None:
    from api.audit.verify import verify_chain
    from api.core.db import get_sessionmaker

    await drain(api_settings.audit_key)
    tag = unique("kill")
    first = [Writer(tag, i, 5, commit=True) for i in range(40)]
    await asyncio.gather(*(run_writer(w, 0) for w in first))
    before = db.value("SELECT count(*) FROM audit_seals")

    # Killed at the worst moment: seals inserted and the head moved, not committed.
    crashing = SealerProcess(api_settings, crash_at="audit_seal")
    assert await crashing.wait_exit(60) == -signal.SIGKILL, crashing.log()
    crashing.stop()
    assert db.value("SELECT count(*) FROM audit_seals") == before

    # Now kill -9 at random moments while writers keep writing.
    more = [Writer(tag, 100 + i, random.randint(1, 4), commit=i % 4 != 0) for i in range(200)]

    async def writing() -> None:
        sem = asyncio.Semaphore(8)

        async def one(w: Writer) -> None:
            async with sem:
                await run_writer(w, pause=0.005)

        await asyncio.gather(*(one(w) for w in more))

    task = asyncio.create_task(writing())
    kills = 0
    while not task.done() or kills < 3:
        proc = SealerProcess(api_settings)
        await asyncio.sleep(random.uniform(1.0, 2.0))
        proc.kill()
        kills += 1
    await task
    final = SealerProcess(api_settings)
    try:
        expected = sorted(i for w in first + more if w.commit for i in w.ids)
        for _ in range(300):
            if len(seals_of(db, tag)) >= len(expected):
                break
            await asyncio.sleep(0.1)
    finally:
        final.stop()
    assert sorted(e for _, e, _ in seals_of(db, tag)) == expected
    assert_chain_shape(db)
    async with get_sessionmaker()() as session:
        report = await verify_chain(session, api_settings.audit_key)
    assert report.ok, report.problem


async def test_an_open_transaction_holds_back_what_it_could_precede(
    api_settings: Settings, db: Db
) -> None:
    """An open writing transaction stops sealing at its xid; later committed events wait."""
    import psycopg

    tag = unique("held")
    insert = ("INSERT INTO audit_events (action, entity, entity_id, at, details) "
              "VALUES ('test.held', 'x', %s, now(), %s)")
    details = f'{{"tag": "{tag}"}}'
    count = ("SELECT count(*) FROM audit_seals s JOIN audit_events e "
             "ON e.id = s.event_id WHERE e.details->>'tag' = %s")
    async with await psycopg.AsyncConnection.connect(db.url) as held, \
            await psycopg.AsyncConnection.connect(db.url, autocommit=True) as other:
        await held.execute(insert, ("held", details))
        await other.execute(insert, ("later", details))
        await drain(api_settings.audit_key)
        assert db.value(count, tag) == 0  # the later event could still be preceded
        await held.commit()
    await drain(api_settings.audit_key)
    order = db.rows("SELECT e.entity_id FROM audit_seals s JOIN audit_events e "
                    "ON e.id = s.event_id WHERE e.details->>'tag' = %s ORDER BY s.seq", tag)
    assert [r[0] for r in order] == ["held", "later"]
