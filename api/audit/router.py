"""``/admin/audit``: read the audit log and verify its hash chain (admins only)."""

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select

from api.audit.chain import verify_chain
from api.audit.models import AuditEvent
from api.audit.schemas import AuditEventOut, AuditPage, ChainVerification
from api.auth.deps import AdminUser
from api.core.db import SessionDep
from api.core.pagination import DEFAULT_LIMIT, decode_id_cursor, encode_id_cursor
from api.core.problems import problem_responses
from api.web.deps import Cursor, Limit

router = APIRouter(prefix="/admin/audit", tags=["audit"])


@router.get("", response_model=AuditPage, responses=problem_responses(401, 403, 422))
async def list_audit_events(
    session: SessionDep,
    _admin: AdminUser,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Newest first; the bigint id is the keyset (ids only grow)."""
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit + 1)
    if cursor:
        stmt = stmt.where(AuditEvent.id < decode_id_cursor(cursor))
    rows = (await session.scalars(stmt)).all()
    next_cursor = encode_id_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return {
        "items": [AuditEventOut.model_validate(r) for r in rows[:limit]],
        "next_cursor": next_cursor,
    }


@router.get("/verify", response_model=ChainVerification, responses=problem_responses(401, 403))
async def verify(session: SessionDep, _admin: AdminUser) -> ChainVerification:
    report = await verify_chain(session)
    return ChainVerification(ok=report.ok, checked=report.checked, first_bad_id=report.first_bad_id)
