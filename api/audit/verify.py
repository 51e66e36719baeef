"""``verify``: the whole sealed chain, the head, and the latest anchor (on chain too).

What each check catches, for someone who can write the tables but lacks the key:

* a rewritten event (content changed): its seal's HMAC no longer matches;
* a rehash (seals recomputed): impossible without the key, every MAC fails;
* a deleted or reordered seal in the middle: ``seq`` gap or ``prev_hash`` break;
* a deleted event under its seal: the seal names a missing event;
* a deleted tail (newest events and seals): the latest anchor names a ``seq`` /
  hash that is no longer there, or more seals than remain;
* a forged anchor row: the memo at its signature (read back by RPC, signed by
  the platform fee payer) must name the same head;
* an event slipped in behind the sealer (trigger disabled): unsealed below the
  frontier. Legacy rows (``xid = 0``, before 0004) also keep their SHA-256 links.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from solana.rpc.async_api import AsyncClient
from sqlalchemy import and_, exists, func, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.anchor import AnchoredHead, latest_anchor, onchain_anchor
from api.audit.chain import GENESIS_HASH, canonical_of, chain_hash, seal_mac
from api.audit.models import AuditChainHead, AuditEvent, AuditSeal
from api.integrations.solana.errors import ChainError

CHAIN_TIMEOUT_S = 5.0


@dataclass
class AnchorReport:
    id: int | None
    seq: int
    hash: str
    signature: str
    slot: int
    at: datetime
    on_chain: bool | None  # None: the chain could not be asked


@dataclass
class ChainReport:
    ok: bool
    checked: int
    first_bad_id: int | None
    head: AnchoredHead = field(default_factory=lambda: AnchoredHead(0, None, GENESIS_HASH))
    anchor: AnchorReport | None = None
    unsealed: int = 0
    problem: str | None = None


def _bad(report: ChainReport, event_id: int | None, problem: str) -> ChainReport:
    report.ok, report.first_bad_id, report.problem = False, event_id, problem
    return report


async def verify_chain(
    session: AsyncSession,
    key: bytes | None = None,
    *,
    client: AsyncClient | None = None,
    payer: str | None = None,
    batch: int = 5000,
    isolate: bool = True,
) -> ChainReport:
    """Walk the seals in ``seq`` order, then check head, frontier and latest anchor.

    ``isolate`` starts a fresh REPEATABLE READ transaction (one snapshot while the
    sealer keeps sealing); pass False to verify inside the session's transaction.
    """
    if key is None:
        from ece.settings import get_settings

        key = get_settings().audit_key
    if isolate:
        if session.in_transaction():
            await session.rollback()  # verify is read-only: nothing of the caller's is lost
        await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
    report = ChainReport(True, 0, None)
    prev, legacy_prev, last_seq, last_event = GENESIS_HASH, GENESIS_HASH, 0, None
    while True:
        rows = (
            await session.execute(
                select(AuditSeal, AuditEvent)
                .outerjoin(AuditEvent, AuditEvent.id == AuditSeal.event_id)
                .where(AuditSeal.seq > last_seq)
                .order_by(AuditSeal.seq)
                .limit(batch)
            )
        ).all()
        for seal, event in rows:
            if seal.seq != last_seq + 1:
                return _bad(report, seal.event_id, f"seal {last_seq + 1} is missing")
            if event is None:
                return _bad(report, seal.event_id, f"sealed event {seal.event_id} is missing")
            canonical = canonical_of(event)
            if seal.prev_hash != prev or seal.hash != seal_mac(
                key, seal.seq, prev, event.id, canonical
            ):
                return _bad(report, event.id, f"seal {seal.seq} does not match its event")
            if event.xid == 0:  # pre-0004 row: its keyless link too
                if event.prev_hash != legacy_prev or event.hash != chain_hash(
                    legacy_prev, canonical
                ):
                    return _bad(report, event.id, "legacy hash link broken")
                legacy_prev = event.hash
            prev, last_seq, last_event = seal.hash, seal.seq, event
            report.checked += 1
        session.expunge_all()
        if len(rows) < batch:
            break
    head = (
        await session.execute(select(AuditChainHead).where(AuditChainHead.id == 1))
    ).scalar_one()
    report.head = AnchoredHead(last_seq, last_event.id if last_event else None, prev)
    if head.seq != last_seq or head.hash != prev:
        return _bad(report, report.head.event_id, "the head row disagrees with the last seal")
    sealed = exists().where(AuditSeal.event_id == AuditEvent.id)
    frontier = tuple_(AuditEvent.xid, AuditEvent.id) <= tuple_(head.last_xid, head.last_event_id)
    behind = await session.scalar(
        select(func.min(AuditEvent.id)).where(and_(frontier, ~sealed))
    )
    report.unsealed = int(
        await session.scalar(select(func.count()).select_from(AuditEvent).where(~sealed)) or 0
    )
    if behind is not None:
        return _bad(report, behind, "an unsealed event sits behind the sealed frontier")
    return await _check_anchor(session, report, client, payer)


async def _check_anchor(
    session: AsyncSession, report: ChainReport, client: AsyncClient | None, payer: str | None
) -> ChainReport:
    anchor = await latest_anchor(session)
    if anchor is None:
        return report
    report.anchor = AnchorReport(anchor.event_id, anchor.seq, anchor.head_hash,
                                 anchor.signature, anchor.slot, anchor.at, None)
    if anchor.seq > report.head.seq:
        return _bad(report, anchor.event_id,
                    f"the anchor names seal {anchor.seq}; only {report.head.seq} remain")
    at_anchor = await session.scalar(select(AuditSeal).where(AuditSeal.seq == anchor.seq))
    if at_anchor is None or at_anchor.hash != anchor.head_hash or (
        anchor.event_id is not None and at_anchor.event_id != anchor.event_id
    ):
        return _bad(report, anchor.event_id, f"seal {anchor.seq} is not the anchored head")
    if client is None or payer is None:
        return report
    try:
        named = await asyncio.wait_for(onchain_anchor(client, anchor.signature, payer),
                                       CHAIN_TIMEOUT_S)
    except (ChainError, TimeoutError, OSError):
        return report  # on_chain stays None: unknown, not disproved
    except ValueError:  # not even a signature
        named = None
    expected = AnchoredHead(anchor.seq, anchor.event_id, anchor.head_hash)
    report.anchor.on_chain = named == expected
    if not report.anchor.on_chain:
        return _bad(report, anchor.event_id, "the anchor row disagrees with the chain")
    return report
