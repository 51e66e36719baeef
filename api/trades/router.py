"""``/trade-offers``: HTTP translation only; the rules live in ``trades.service``."""

import hashlib
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from api.auth.deps import CurrentUser, SessionDep, user_context
from api.core.audit import AuditContext
from api.core.cache import CardCache, get_card_cache
from api.core.idempotency import IdempotencyDep
from api.core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from api.core.problems import problem_responses
from api.trades import service
from api.trades.schemas import (
    OfferRole,
    OfferStatus,
    TradeOfferCreate,
    TradeOfferOut,
    TradeOfferPage,
)

router = APIRouter(prefix="/trade-offers", tags=["trades"])

UserCtx = Annotated[AuditContext, Depends(user_context)]
Cache = Annotated[CardCache, Depends(get_card_cache)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=500)]


def etag_response(payload: Any, if_none_match: str | None) -> Response:
    """The JSON body with an ETag of its bytes (304 when the client already has them).

    The tag hashes the rendered document rather than a row version because an
    offer's effective status changes with the clock (pending -> expired) without
    any write to its row.
    """
    content = jsonable_encoder(payload)
    rendered = JSONResponse(content)
    tag = '"' + hashlib.sha256(rendered.body).hexdigest()[:32] + '"'
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    if if_none_match:
        candidates = [c.strip().removeprefix("W/") for c in if_none_match.split(",")]
        if "*" in candidates or tag in candidates:
            return Response(status_code=304, headers=headers)
    rendered.headers.update(headers)
    return rendered


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TradeOfferOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def create_offer(
    body: TradeOfferCreate, session: SessionDep, user: CurrentUser, ctx: UserCtx
) -> TradeOfferOut:
    offer = await service.create_offer(session, ctx, user, body)
    return offer.out()


@router.get("", response_model=TradeOfferPage, responses=problem_responses(401, 422))
async def list_offers(
    session: SessionDep,
    user: CurrentUser,
    role: OfferRole | None = None,
    status: OfferStatus | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> TradeOfferPage:
    offers, next_cursor = await service.list_offers(
        session, user, role=role, status=status, limit=limit, cursor=cursor
    )
    return TradeOfferPage(items=[o.out() for o in offers], next_cursor=next_cursor)


@router.get(
    "/{offer_id}",
    response_model=TradeOfferOut,
    responses={304: {"description": "Not modified (ETag matched)"},
               **problem_responses(401, 404, 422)},
)
async def get_offer(
    offer_id: uuid.UUID,
    session: SessionDep,
    user: CurrentUser,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    offer = await service.get_offer(session, user, offer_id)
    return etag_response(offer.out(), if_none_match)


@router.post(
    "/{offer_id}/accept",
    response_model=TradeOfferOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def accept_offer(
    offer_id: uuid.UUID,
    session: SessionDep,
    cache: Cache,
    user: CurrentUser,
    ctx: UserCtx,
    idem: IdempotencyDep,
) -> Response:
    """Honours ``Idempotency-Key``: a retry gets the first answer, nothing moves twice."""
    if idem.replay is not None:
        return idem.replay
    idem.answer(200, lambda offer: offer.out().model_dump(mode="json"))
    offer = await service.accept_offer(session, cache, ctx, user, offer_id, idem)
    return idem.response(offer)


@router.post(
    "/{offer_id}/reject",
    response_model=TradeOfferOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def reject_offer(
    offer_id: uuid.UUID, session: SessionDep, user: CurrentUser, ctx: UserCtx
) -> TradeOfferOut:
    return (await service.reject_offer(session, ctx, user, offer_id)).out()


@router.post(
    "/{offer_id}/cancel",
    response_model=TradeOfferOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def cancel_offer(
    offer_id: uuid.UUID, session: SessionDep, user: CurrentUser, ctx: UserCtx
) -> TradeOfferOut:
    return (await service.cancel_offer(session, ctx, user, offer_id)).out()
