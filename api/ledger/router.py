"""Money endpoints: ``/admin/deposits`` (admin credits a user), ``/me/balance`` and
``/me/ledger`` (a user's own money only: there is no user id in these paths, so no
one can read another user's balance)."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from api.auth.deps import AdminUser, CurrentUser, SessionDep
from api.core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from api.core.problems import problem_responses
from api.ledger import service
from api.ledger.models import LedgerEntry
from api.ledger.schemas import BalanceOut, DepositIn, DepositOut, LedgerEntryOut, LedgerPage
from api.web.deps import UserCtx
from api.web.idempotency import IdempotencyDep

router = APIRouter(tags=["money"])



@router.post(
    "/admin/deposits",
    status_code=status.HTTP_201_CREATED,
    response_model=DepositOut,
    responses=problem_responses(401, 403, 409, 422),
)
async def create_deposit(
    body: DepositIn, session: SessionDep, _admin: AdminUser, ctx: UserCtx, idem: IdempotencyDep
) -> Response:
    """Credit a user from outside the platform. Honours ``Idempotency-Key``."""
    if idem.replay is not None:
        return idem.replay

    def render(entry: LedgerEntry) -> dict[str, Any]:
        return DepositOut(
            id=entry.id,
            user_id=body.user_id,
            amount_cents=entry.amount_cents,
            kind="deposit",
            reference=body.reference,
            reference_id=service.deposit_reference_id(body.reference),
            transaction_id=entry.transaction_id,
            created_at=entry.created_at,
        ).model_dump(mode="json")

    idem.answer(status.HTTP_201_CREATED, render)
    entry = await service.admin_deposit(
        session, ctx, body.user_id, body.amount_cents, body.reference, idem
    )
    return idem.response(entry)


@router.get("/me/balance", response_model=BalanceOut, responses=problem_responses(401))
async def my_balance(session: SessionDep, user: CurrentUser) -> BalanceOut:
    available, held = await service.balances(session, user.id)
    return BalanceOut(available_cents=available, held_cents=held)


@router.get("/me/ledger", response_model=LedgerPage, responses=problem_responses(401, 422))
async def my_ledger(
    session: SessionDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    """Entries on the caller's available and held accounts, newest first."""
    items, next_cursor = await service.ledger_page(session, user.id, limit=limit, cursor=cursor)
    return {"items": [LedgerEntryOut(**i) for i in items], "next_cursor": next_cursor}
