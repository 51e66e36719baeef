"""Money endpoints: ``/admin/deposits`` (admin credits a user), ``/me/balance`` and
``/me/ledger`` (a user's own money only: there is no user id in these paths, so no
one can read another user's balance)."""

from typing import Any

from fastapi import APIRouter, Response, status

from api.auth.deps import AdminUser, CurrentUser
from api.core.db import SessionDep
from api.core.pagination import DEFAULT_LIMIT
from api.core.problems import problem_responses
from api.ledger import service
from api.ledger.schemas import BalanceOut, DepositIn, DepositOut, LedgerEntryOut, LedgerPage
from api.web.deps import Cursor, Limit, UserCtx
from api.web.idempotency import IdempotentWrite

router = APIRouter(tags=["money"])

@router.post(
    "/admin/deposits",
    status_code=status.HTTP_201_CREATED,
    response_model=DepositOut,
    responses=problem_responses(401, 403, 409, 422),
)
async def create_deposit(
    body: DepositIn, uow: IdempotentWrite, _admin: AdminUser, ctx: UserCtx
) -> Response:
    """Credit a user from outside the platform. Honours ``Idempotency-Key``."""
    entry = await service.admin_deposit(
        uow, ctx, body.user_id, body.amount_cents, body.reference
    )
    out = DepositOut(
        id=entry.id,
        user_id=body.user_id,
        amount_cents=entry.amount_cents,
        kind="deposit",
        reference=body.reference,
        reference_id=service.deposit_reference_id(body.reference),
        transaction_id=entry.transaction_id,
        created_at=entry.created_at,
    )
    return uow.reply(out, status.HTTP_201_CREATED)


@router.get("/me/balance", response_model=BalanceOut, responses=problem_responses(401))
async def my_balance(session: SessionDep, user: CurrentUser) -> BalanceOut:
    available, held = await service.balances(session, user.id)
    return BalanceOut(available_cents=available, held_cents=held)


@router.get("/me/ledger", response_model=LedgerPage, responses=problem_responses(401, 422))
async def my_ledger(
    session: SessionDep,
    user: CurrentUser,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Entries on the caller's available and held accounts, newest first."""
    items, next_cursor = await service.ledger_page(session, user.id, limit=limit, cursor=cursor)
    return {"items": [LedgerEntryOut(**i) for i in items], "next_cursor": next_cursor}
