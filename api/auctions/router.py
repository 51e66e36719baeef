"""``/auctions``: HTTP translation only; the rules live in ``auctions.service``."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Response, status

from api.auctions import service
from api.auctions.schemas import (
    AuctionCreate,
    AuctionOut,
    AuctionPage,
    AuctionSort,
    AuctionStatus,
    BidCreate,
    BidOut,
    BidPage,
)
from api.auth.deps import CurrentUser
from api.core import etag
from api.core.cache import get_redis
from api.core.db import SessionDep
from api.core.pagination import DEFAULT_LIMIT
from api.core.problems import problem_responses
from api.core.uow import UowDep
from api.web.deps import Cache, Cursor, Limit, UserCtx
from api.web.idempotency import IdempotentWrite

router = APIRouter(prefix="/auctions", tags=["auctions"])

@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=AuctionOut,
    responses=problem_responses(401, 403, 409, 422),
)
async def create_auction(
    body: AuctionCreate, uow: UowDep, cache: Cache, user: CurrentUser, ctx: UserCtx
) -> AuctionOut:
    auction = await service.create_auction(uow, cache, ctx, user, body)
    return AuctionOut.model_validate(auction)


@router.get("", response_model=AuctionPage, responses=problem_responses(422))
async def list_auctions(
    session: SessionDep,
    status: AuctionStatus | None = None,
    card_id: uuid.UUID | None = None,
    seller_id: uuid.UUID | None = None,
    sort: AuctionSort | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> AuctionPage:
    rows, next_cursor = await service.list_auctions(
        session, status=status, card_id=card_id, seller_id=seller_id, sort=sort,
        limit=limit, cursor=cursor,
    )
    return AuctionPage(
        items=[AuctionOut.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.get(
    "/{auction_id}",
    response_model=AuctionOut,
    responses={304: {"description": "Not modified (ETag matched)"},
               **problem_responses(404, 422)},
)
async def get_auction(
    auction_id: uuid.UUID,
    session: SessionDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    auction = await service.get_auction(session, auction_id)
    return etag.conditional_json(
        AuctionOut.model_validate(auction), if_none_match, resource_id=auction.id
    )


@router.get("/{auction_id}/bids", response_model=BidPage, responses=problem_responses(404, 422))
async def list_bids(
    auction_id: uuid.UUID,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> BidPage:
    rows, next_cursor = await service.list_bids(session, auction_id, limit=limit, cursor=cursor)
    return BidPage(items=[BidOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/{auction_id}/bids",
    status_code=status.HTTP_201_CREATED,
    response_model=BidOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def place_bid(
    auction_id: uuid.UUID,
    body: BidCreate,
    uow: IdempotentWrite,
    user: CurrentUser,
    ctx: UserCtx,
) -> Response:
    """Honours ``Idempotency-Key``: a retry with the same body gets the first answer."""
    placed = await service.place_bid(
        uow, ctx, user, auction_id, body.amount_cents, redis=get_redis()
    )
    return uow.reply(BidOut.model_validate(placed.bid), status.HTTP_201_CREATED)


@router.post(
    "/{auction_id}/cancel",
    response_model=AuctionOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def cancel_auction(
    auction_id: uuid.UUID, uow: UowDep, cache: Cache, user: CurrentUser, ctx: UserCtx
) -> AuctionOut:
    auction = await service.cancel_auction(uow, cache, ctx, user, auction_id)
    return AuctionOut.model_validate(auction)
