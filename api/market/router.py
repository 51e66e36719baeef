"""``/listings``: fixed-price listings and purchases.

Object-level authorization lives in the service (it needs the locked row): only the
card's owner lists it, only the seller or an admin cancels, anyone but the seller
buys. ``POST /listings/{id}/purchase`` honours ``Idempotency-Key``.
"""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response, status

from api.auth.deps import CurrentUser
from api.core import etag
from api.core.db import SessionDep
from api.core.pagination import DEFAULT_LIMIT
from api.core.problems import problem_responses, validation_error
from api.core.uow import UowDep
from api.market import service
from api.market.schemas import (
    ListingCreate,
    ListingOut,
    ListingPage,
    ListingSort,
    ListingStatus,
    SaleOut,
)
from api.web.deps import Cache, Cursor, Limit, UserCtx
from api.web.idempotency import IdempotentWrite

router = APIRouter(prefix="/listings", tags=["marketplace"])

Price = Annotated[int | None, Query(ge=0)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ListingOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def create_listing(
    body: ListingCreate, uow: UowDep, cache: Cache, user: CurrentUser, ctx: UserCtx
) -> ListingOut:
    listing = await service.create_listing(uow, cache, ctx, user, body.card_id, body.price_cents)
    return ListingOut.model_validate(listing)


@router.get("", response_model=ListingPage, responses=problem_responses(422))
async def list_listings(
    session: SessionDep,
    status: ListingStatus = "active",
    card_id: uuid.UUID | None = None,
    seller_id: uuid.UUID | None = None,
    min_price_cents: Price = None,
    max_price_cents: Price = None,
    sort: ListingSort = "-created",
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Anyone may browse; ``status`` defaults to ``active``, ``sort`` to ``-created``."""
    if (
        min_price_cents is not None
        and max_price_cents is not None
        and min_price_cents > max_price_cents
    ):
        raise validation_error(
            "min_price_cents is greater than max_price_cents",
            [{"loc": ["query", "min_price_cents"], "msg": "greater than max_price_cents",
              "type": "value_error"}],
        )
    rows, next_cursor = await service.list_listings(
        session,
        status=status,
        card_id=card_id,
        seller_id=seller_id,
        min_price_cents=min_price_cents,
        max_price_cents=max_price_cents,
        sort=sort,
        limit=limit,
        cursor=cursor,
    )
    return {"items": [ListingOut.model_validate(r) for r in rows], "next_cursor": next_cursor}


@router.get(
    "/{listing_id}",
    response_model=ListingOut,
    responses={304: {"description": "Not modified (ETag matched)"}, **problem_responses(404, 422)},
)
async def get_listing(
    listing_id: uuid.UUID,
    session: SessionDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    listing = await service.get_listing(session, listing_id)
    return etag.conditional_json(
        ListingOut.model_validate(listing), if_none_match, resource_id=listing.id
    )


@router.delete(
    "/{listing_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def cancel_listing(
    listing_id: uuid.UUID, uow: UowDep, cache: Cache, user: CurrentUser, ctx: UserCtx
) -> Response:
    await service.cancel_listing(uow, cache, ctx, user, listing_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{listing_id}/purchase",
    status_code=status.HTTP_201_CREATED,
    response_model=SaleOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def purchase(
    listing_id: uuid.UUID,
    uow: IdempotentWrite,
    cache: Cache,
    user: CurrentUser,
    ctx: UserCtx,
) -> Response:
    """Buy the listing. Honours ``Idempotency-Key`` (a retry gets the same sale)."""
    sale = await service.purchase(uow, cache, ctx, user, listing_id)
    return uow.reply(SaleOut.model_validate(sale), status.HTTP_201_CREATED)
