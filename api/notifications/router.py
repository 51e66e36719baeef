"""``/notifications``, ``/push/vapid-public-key`` and ``/me/push-subscriptions``: HTTP
translation only; the rules live in ``notifications.service``. The live stream is
``notifications.live`` (``/ws``)."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from api.auth.deps import CurrentUser
from api.core.db import SessionDep
from api.core.pagination import DEFAULT_LIMIT
from api.core.problems import problem_responses
from api.core.uow import UowDep
from api.notifications import service
from api.notifications.schemas import (
    NotificationOut,
    NotificationPage,
    PushSubscriptionIn,
    PushSubscriptionOut,
    PushSubscriptionPage,
    UnreadCount,
    VapidPublicKey,
)
from api.notifications.vapid import public_key_b64url
from api.web.deps import Cursor, Limit, UserCtx
from ece.settings import get_settings

router = APIRouter(tags=["notifications"])


@router.get("/notifications", response_model=NotificationPage,
            responses=problem_responses(401, 422))
async def list_notifications(
    session: SessionDep,
    user: CurrentUser,
    unread: bool = False,
    after_seq: Annotated[int | None, Query(ge=0)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Newest first by ``seq``; ``?after_seq=N``: the ones after N, oldest first."""
    rows, next_cursor = await service.list_notifications(
        session, user, unread=unread, after_seq=after_seq, limit=limit, cursor=cursor
    )
    return {"items": [NotificationOut.model_validate(r) for r in rows], "next_cursor": next_cursor}


@router.get("/notifications/unread-count", response_model=UnreadCount,
            responses=problem_responses(401))
async def unread_count(session: SessionDep, user: CurrentUser) -> UnreadCount:
    return UnreadCount(unread=await service.unread_count(session, user))


@router.post("/notifications/read-all", status_code=status.HTTP_204_NO_CONTENT,
             responses=problem_responses(401))
async def read_all(uow: UowDep, user: CurrentUser, ctx: UserCtx) -> Response:
    await service.mark_all_read(uow, ctx, user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/notifications/{notification_id}/read", status_code=status.HTTP_204_NO_CONTENT,
             responses=problem_responses(401, 404, 422))
async def read_one(
    notification_id: uuid.UUID, uow: UowDep, user: CurrentUser, ctx: UserCtx
) -> Response:
    """204 (also when it was read already); someone else's id is 404."""
    await service.mark_read(uow, ctx, user, notification_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/push/vapid-public-key", response_model=VapidPublicKey)
async def vapid_public_key() -> VapidPublicKey:
    """The server's VAPID key: the browser's ``applicationServerKey``."""
    return VapidPublicKey(public_key=public_key_b64url(get_settings()))


@router.post(
    "/me/push-subscriptions",
    status_code=status.HTTP_201_CREATED,
    response_model=PushSubscriptionOut,
    responses={200: {"description": "Already registered by the caller (same id)",
                     "model": PushSubscriptionOut},
               **problem_responses(401, 422)},
)
async def subscribe(
    body: PushSubscriptionIn, uow: UowDep, user: CurrentUser, ctx: UserCtx
) -> Response:
    """201 when new for the caller; the same endpoint again is 200 with the same id.
    An endpoint registered by another account moves to the caller (201, new id)."""
    row, created = await service.subscribe(uow, ctx, user, body, get_settings())
    return uow.reply(PushSubscriptionOut.model_validate(row),
                     status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@router.get("/me/push-subscriptions", response_model=PushSubscriptionPage,
            responses=problem_responses(401, 422))
async def list_subscriptions(
    session: SessionDep, user: CurrentUser, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> dict[str, Any]:
    rows, next_cursor = await service.list_subscriptions(session, user, limit=limit,
                                                         cursor=cursor)
    return {"items": [PushSubscriptionOut.model_validate(r) for r in rows],
            "next_cursor": next_cursor}


@router.delete("/me/push-subscriptions/{subscription_id}",
               status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(401, 404, 422))
async def unsubscribe(
    subscription_id: uuid.UUID, uow: UowDep, user: CurrentUser, ctx: UserCtx
) -> Response:
    await service.unsubscribe(uow, ctx, user, subscription_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
