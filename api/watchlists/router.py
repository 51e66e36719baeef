"""``/me/watchlist`` and ``/me/alerts``: HTTP translation only; rules in ``watchlists.service``."""

import uuid
from typing import Any

from fastapi import APIRouter, Response, status

from api.auth.deps import CurrentUser
from api.core.db import SessionDep
from api.core.pagination import DEFAULT_LIMIT
from api.core.problems import problem_responses
from api.core.uow import UowDep
from api.watchlists import service
from api.watchlists.schemas import AlertIn, AlertOut, AlertPage, WatchIn, WatchOut, WatchPage
from api.web.deps import Cursor, Limit, UserCtx

router = APIRouter(prefix="/me", tags=["watchlists"])


@router.post(
    "/watchlist",
    status_code=status.HTTP_201_CREATED,
    response_model=WatchOut,
    responses={200: {"description": "Already watched", "model": WatchOut},
               **problem_responses(401, 404, 422)},
)
async def watch(body: WatchIn, uow: UowDep, user: CurrentUser, ctx: UserCtx) -> Response:
    """201 when new, 200 when the card was watched already; unknown card 404."""
    entry, created = await service.watch(uow, ctx, user, body.card_id)
    return uow.reply(WatchOut.model_validate(entry),
                     status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@router.get("/watchlist", response_model=WatchPage, responses=problem_responses(401, 422))
async def list_watched(
    session: SessionDep, user: CurrentUser, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> dict[str, Any]:
    """The caller's watched cards, newest first."""
    rows, next_cursor = await service.list_watched(session, user, limit=limit, cursor=cursor)
    return {"items": [WatchOut.model_validate(r) for r in rows], "next_cursor": next_cursor}


@router.delete("/watchlist/{card_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=problem_responses(401, 404, 422))
async def unwatch(card_id: uuid.UUID, uow: UowDep, user: CurrentUser, ctx: UserCtx) -> Response:
    """204; a card the caller does not watch is 404."""
    await service.unwatch(uow, ctx, user, card_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/alerts", status_code=status.HTTP_201_CREATED, response_model=AlertOut,
             responses=problem_responses(401, 422))
async def create_alert(body: AlertIn, uow: UowDep, user: CurrentUser, ctx: UserCtx) -> AlertOut:
    """At least one of ``card_id``, ``set_name``, ``rarity``; a positive price in cents."""
    return AlertOut.model_validate(await service.create_alert(uow, ctx, user, body))


@router.get("/alerts", response_model=AlertPage, responses=problem_responses(401, 422))
async def list_alerts(
    session: SessionDep, user: CurrentUser, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> dict[str, Any]:
    rows, next_cursor = await service.list_alerts(session, user, limit=limit, cursor=cursor)
    return {"items": [AlertOut.model_validate(r) for r in rows], "next_cursor": next_cursor}


@router.delete("/alerts/{alert_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=problem_responses(401, 404, 422))
async def delete_alert(
    alert_id: uuid.UUID, uow: UowDep, user: CurrentUser, ctx: UserCtx
) -> Response:
    """204 for the owner; anyone else's (or an unknown) alert is 404."""
    await service.delete_alert(uow, ctx, user, alert_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
