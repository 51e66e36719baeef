"""Append-only, hash-chained audit log written in the caller's transaction.

``hash = sha256(prev_hash || canonical JSON of the event)``. Appends are
serialised with a transaction-scoped advisory lock so two transactions can never
chain onto the same predecessor; the lock is held until commit, so call
:func:`record` as the LAST statement of a write (it then costs the chain only
the commit time). If the surrounding transaction rolls back, the event vanishes
with it: an event exists exactly when its change does.
"""

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.models import AuditEvent

GENESIS_HASH = "0" * 64
AUDIT_LOCK_KEY = 7_310_002


@dataclass(frozen=True)
class AuditContext:
    """Who is acting and from where (built by routers from the request, by the CLI)."""

    actor_id: uuid.UUID | None = None
    ip: str | None = None


def canonical_event(
    *,
    actor_id: uuid.UUID | str | None,
    action: str,
    entity: str,
    entity_id: str | None,
    ip: str | None,
    details: dict[str, Any],
    at: datetime,
) -> str:
    """Stable JSON of an event (sorted keys, no spaces, UTC microsecond timestamp)."""
    return json.dumps(
        {
            "actor_id": str(actor_id) if actor_id else None,
            "action": action,
            "entity": entity,
            "entity_id": entity_id,
            "ip": ip,
            "details": details,
            "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )


def chain_hash(prev_hash: str, canonical: str) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical.encode()).hexdigest()


async def record(
    session: AsyncSession,
    ctx: AuditContext,
    action: str,
    entity: str,
    entity_id: object | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain inside the session's current transaction."""
    details = json.loads(json.dumps(details or {}, default=str))  # what JSONB will return
    await session.execute(select(func.pg_advisory_xact_lock(AUDIT_LOCK_KEY)))
    prev = await session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    prev_hash = prev or GENESIS_HASH
    at = datetime.now(UTC)
    eid = str(entity_id) if entity_id is not None else None
    canonical = canonical_event(
        actor_id=ctx.actor_id,
        action=action,
        entity=entity,
        entity_id=eid,
        ip=ctx.ip,
        details=details,
        at=at,
    )
    event = AuditEvent(
        actor_id=ctx.actor_id,
        action=action,
        entity=entity,
        entity_id=eid,
        ip=ctx.ip,
        details=details,
        at=at,
        prev_hash=prev_hash,
        hash=chain_hash(prev_hash, canonical),
    )
    session.add(event)
    await session.flush()
    return event


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_bad_id: int | None


async def verify_chain(session: AsyncSession, batch: int = 5000) -> ChainReport:
    """Walk the chain in id order; the first row whose links or hash disagree is reported."""
    prev_hash = GENESIS_HASH
    checked = 0
    last_id = 0
    while True:
        rows = (
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.id > last_id)
                .order_by(AuditEvent.id)
                .limit(batch)
            )
        ).all()
        if not rows:
            return ChainReport(True, checked, None)
        for ev in rows:
            canonical = canonical_event(
                actor_id=ev.actor_id,
                action=ev.action,
                entity=ev.entity,
                entity_id=ev.entity_id,
                ip=ev.ip,
                details=ev.details,
                at=ev.at,
            )
            if ev.prev_hash != prev_hash or ev.hash != chain_hash(prev_hash, canonical):
                return ChainReport(False, checked, ev.id)
            prev_hash = ev.hash
            checked += 1
            last_id = ev.id
        session.expunge_all()
