"""The single sealer: chains committed audit events with HMAC-SHA-256, in commit order.

Writers INSERT unsealed rows stamped with their top-level transaction id ``xid``
(a trigger, :mod:`api.audit.chain`). One sealing transaction:

1. locks the head row (``audit_chain_head ... FOR UPDATE``): a second sealer
   waits, then sees the moved head; the unique ``seq`` and ``event_id`` of
   ``audit_seals`` would refuse a double seal even without the lock;
2. in ONE statement (so one snapshot ``S``) reads the rows with
   ``(xid, id) > head frontier`` and ``xid < m``, ``m = pg_snapshot_xmin(S)``,
   ordered by ``(xid, id)``, at most ``limit``;
3. inserts their seals at ``seq = head + 1 ...`` and moves the head, then
   COMMITs: seals and head move together or not at all (a kill -9 anywhere
   before COMMIT rolls back to the previous head; the next run redoes it).

Why this is complete, final and commit-consistent:

* *Final below m.* ``m`` is the smallest xid still running at ``S``. A
  transaction with xid ``x < m`` is therefore finished at ``S``: committed (its
  rows are visible in ``S``) or aborted (its rows never are). Every transaction
  that could still commit a row either was running at ``S`` (xid >= m by
  definition of m) or has no xid yet and gets one >= ``S.xmax`` >= m. So the set
  ``R(m)`` of committed rows with ``xid < m`` is exactly what ``S`` shows and
  never gains a member: nothing can later appear *before* a sealed row.
* *No loss, no double seal.* ``m`` never decreases between sealings (a later
  snapshot's running xids were running before, hence >= m, or are newer). The
  frontier is the ``(xid, id)`` of the last sealed row; all of ``R(m)`` up to it
  is sealed, the rest is picked next time (same ``xid`` and a higher ``id``, or a
  higher ``xid``). Each event is sealed in the transaction that moves the head
  past it, once (``event_id`` is unique).
* *Order.* ``(xid, id)`` is total. Events of one transaction are contiguous and
  in insertion order (``id`` from a sequence). If transaction A committed
  before B did its first write (B's xid is assigned then), ``xid(A) < xid(B)``,
  so A's events precede B's: the chain never orders an event before one whose
  transaction had already committed when the later one's transaction began
  writing. Transactions that overlap are ordered by when they began writing.

Cost: a writer pays one INSERT and takes no lock; the sealer waits for the oldest
writing transaction in the cluster (a long one delays sealing, never breaks it).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.chain import canonical_of, seal_mac
from api.audit.models import AuditChainHead, AuditEvent, AuditSeal

SNAPSHOT_XMIN = text("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
DEFAULT_BATCH = 1000


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str
    last_xid: int
    last_event_id: int


async def lock_head(session: AsyncSession) -> Head:
    row = (
        await session.execute(
            select(AuditChainHead).where(AuditChainHead.id == 1).with_for_update()
        )
    ).scalar_one()
    return Head(row.seq, row.hash, row.last_xid, row.last_event_id)


async def seal_batch(session: AsyncSession, key: bytes, limit: int = DEFAULT_BATCH) -> int:
    """Seal up to ``limit`` events in the session's transaction (the caller commits)."""
    head = await lock_head(session)
    events = (
        await session.scalars(
            select(AuditEvent)
            .where(tuple_(AuditEvent.xid, AuditEvent.id) > tuple_(head.last_xid,
                                                                  head.last_event_id))
            .where(AuditEvent.xid < SNAPSHOT_XMIN)
            .order_by(AuditEvent.xid, AuditEvent.id)
            .limit(limit)
        )
    ).all()
    if not events:
        return 0
    seq, prev = head.seq, head.hash
    seals = []
    for event in events:
        seq += 1
        digest = seal_mac(key, seq, prev, event.id, canonical_of(event))
        seals.append({"seq": seq, "event_id": event.id, "prev_hash": prev, "hash": digest})
        prev = digest
    last = events[-1]
    await session.execute(insert(AuditSeal), seals)
    await session.execute(
        update(AuditChainHead)
        .where(AuditChainHead.id == 1)
        .values(seq=seq, hash=prev, last_xid=last.xid, last_event_id=last.id,
                updated_at=text("now()"))
    )
    session.expunge_all()
    return len(events)
