"""``/admin/audit``: read the audit log and verify its sealed chain (admins only)."""

from typing import Any

from fastapi import APIRouter
from solana.rpc.async_api import AsyncClient
from sqlalchemy import select

from api.audit.models import AuditEvent, AuditSeal
from api.audit.schemas import AnchorOut, AuditEventOut, AuditPage, ChainVerification, HeadOut
from api.audit.verify import verify_chain
from api.auth.deps import AdminUser
from api.core.db import SessionDep
from api.core.pagination import DEFAULT_LIMIT, decode_id_cursor, encode_id_cursor
from api.core.problems import problem_responses
from api.nfts.platform_keys import FEE_PAYER, public_of
from api.web.deps import Cursor, Limit
from ece.settings import get_settings

router = APIRouter(prefix="/admin/audit", tags=["audit"])


@router.get("", response_model=AuditPage, responses=problem_responses(401, 403, 422))
async def list_audit_events(
    session: SessionDep,
    _admin: AdminUser,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Newest first; the bigint id is the keyset (ids only grow). Unsealed events have
    null hashes until the sealer reaches them."""
    stmt = (
        select(AuditEvent, AuditSeal)
        .outerjoin(AuditSeal, AuditSeal.event_id == AuditEvent.id)
        .order_by(AuditEvent.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        stmt = stmt.where(AuditEvent.id < decode_id_cursor(cursor))
    rows = (await session.execute(stmt)).all()
    next_cursor = encode_id_cursor(rows[limit - 1][0].id) if len(rows) > limit else None
    items = []
    for event, seal in rows[:limit]:
        out = AuditEventOut.model_validate(event)
        out.seq = seal.seq if seal else None
        out.prev_hash = seal.prev_hash if seal else None
        out.hash = seal.hash if seal else None
        items.append(out)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/verify", response_model=ChainVerification, responses=problem_responses(401, 403))
async def verify(session: SessionDep, _admin: AdminUser) -> ChainVerification:
    """The sealed chain, its head and the latest anchor (read back from Solana)."""
    settings = get_settings()
    async with AsyncClient(settings.solana_rpc_url, timeout=5) as client:
        report = await verify_chain(session, settings.audit_key, client=client,
                                    payer=public_of(settings, FEE_PAYER))
    anchor = report.anchor
    return ChainVerification(
        ok=report.ok,
        checked=report.checked,
        first_bad_id=report.first_bad_id,
        head=HeadOut(id=report.head.event_id, seq=report.head.seq, hash=report.head.hash),
        anchor=AnchorOut(id=anchor.id, seq=anchor.seq, hash=anchor.hash,
                         signature=anchor.signature, slot=anchor.slot, at=anchor.at,
                         on_chain=anchor.on_chain) if anchor else None,
        unsealed=report.unsealed,
        problem=report.problem,
    )
