"""``/trade-offers``: HTTP translation only; the rules live in ``trades.service``."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Response, status

from api.auth.deps import CurrentUser
from api.core import etag
from api.core.db import SessionDep
from api.core.pagination import DEFAULT_LIMIT
from api.core.problems import problem_responses
from api.core.uow import UowDep
from api.trades import service
from api.trades.schemas import (
    OfferRole,
    OfferStatus,
    TradeOfferCreate,
    TradeOfferOut,
    TradeOfferPage,
)
from api.web.deps import Cache, Cursor, Limit, UserCtx
from api.web.idempotency import IdempotentWrite

router = APIRouter(prefix="/trade-offers", tags=["trades"])

@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TradeOfferOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def create_offer(
    body: TradeOfferCreate, uow: UowDep, user: CurrentUser, ctx: UserCtx
) -> TradeOfferOut:
    offer = await service.create_offer(uow, ctx, user, body)
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
    return etag.conditional_json(offer.out(), if_none_match, resource_id=offer.row.id)


@router.post(
    "/{offer_id}/accept",
    response_model=TradeOfferOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def accept_offer(
    offer_id: uuid.UUID,
    uow: IdempotentWrite,
    cache: Cache,
    user: CurrentUser,
    ctx: UserCtx,
) -> Response:
    """Honours ``Idempotency-Key``: a retry gets the first answer, nothing moves twice."""
    offer = await service.accept_offer(uow, cache, ctx, user, offer_id)
    return uow.reply(offer.out())


@router.post(
    "/{offer_id}/reject",
    response_model=TradeOfferOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def reject_offer(
    offer_id: uuid.UUID, uow: UowDep, user: CurrentUser, ctx: UserCtx
) -> TradeOfferOut:
    return (await service.reject_offer(uow, ctx, user, offer_id)).out()


@router.post(
    "/{offer_id}/cancel",
    response_model=TradeOfferOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def cancel_offer(
    offer_id: uuid.UUID, uow: UowDep, user: CurrentUser, ctx: UserCtx
) -> TradeOfferOut:
    return (await service.cancel_offer(uow, ctx, user, offer_id)).out()
