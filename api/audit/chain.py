"""Append-only audit log: events are written in the caller's transaction, sealed later.

:func:`record` is a plain INSERT of an *unsealed* row: no lock, no read of the
previous hash, so a write never waits for another user's write. A trigger stamps
the row with its top-level transaction id (``xid``, ``pg_current_xact_id()``);
the single sealer (:mod:`api.audit.sealer`) later chains the committed rows with
HMAC-SHA-256 under the platform key, in a provably commit-consistent order, and
the head is anchored on Solana every minute (:mod:`api.audit.anchor`). If the
surrounding transaction rolls back, the event vanishes with it: an event exists
exactly when its change does.

Rows written before revision 0004 carry the old keyless chain
(``hash = sha256(prev_hash || canonical JSON)``, :func:`chain_hash`) and
``xid = 0``; the sealer seals them first, in their old (id) order, and
:mod:`api.audit.verify` still checks their old links.
"""

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.models import AuditEvent

GENESIS_HASH = "0" * 64
MAC_DOMAIN = b"ece-audit-seal-v1"


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


def canonical_of(event: AuditEvent) -> str:
    return canonical_event(
        actor_id=event.actor_id,
        action=event.action,
        entity=event.entity,
        entity_id=event.entity_id,
        ip=event.ip,
        details=event.details,
        at=event.at,
    )


def chain_hash(prev_hash: str, canonical: str) -> str:
    """The pre-0004 keyless link (kept to verify legacy rows)."""
    return hashlib.sha256(prev_hash.encode() + canonical.encode()).hexdigest()


def seal_mac(key: bytes, seq: int, prev_hash: str, event_id: int, canonical: str) -> str:
    """The keyed link: HMAC-SHA-256 over position, predecessor, event id and content."""
    message = b"\n".join(
        (MAC_DOMAIN, str(seq).encode(), prev_hash.encode(), str(event_id).encode(),
         canonical.encode())
    )
    return hmac.new(key, message, hashlib.sha256).hexdigest()


async def record(
    session: AsyncSession,
    ctx: AuditContext,
    action: str,
    entity: str,
    entity_id: object | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one (unsealed) event inside the session's current transaction."""
    details = json.loads(json.dumps(details or {}, default=str))  # what JSONB will return
    event = AuditEvent(
        actor_id=ctx.actor_id,
        action=action,
        entity=entity,
        entity_id=str(entity_id) if entity_id is not None else None,
        ip=ctx.ip,
        details=details,
        at=datetime.now(UTC),
    )
    session.add(event)
    await session.flush()
    return event
