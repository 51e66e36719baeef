"""``/ws``: the live stream of a user's notifications (and the market ticker).

``/ws?token=<access token>[&after_seq=N][&channels=notifications,market]``. The token
rides in the query because browsers cannot set headers on a WebSocket; it is checked
exactly like a REST bearer token (``api.auth.deps.current_user``: signature, expiry,
the user still existing, the session not revoked) and never logged. Since no cookie
authenticates the socket, a cross-site page cannot open one as the user (no CSWSH).

The socket is accepted first and then closed with an application code, because a
browser sees the code of a close frame but never the status of a refused handshake:
4401 bad, missing or expired token; 4400 a bad ``after_seq`` or unknown channel;
4408 a client that stopped reading (``api.notifications.subscriber``).

Without ``after_seq`` the stream starts at what is stored now (only new ones). "Now" is
read *before* the handshake completes: a client that sees its socket open gets every
notification stored after that moment. (Read after the accept, a notification stored
while a cold process opened its first database connection counted as "old" and never
reached the socket: the two-API test caught it.)
"""

from __future__ import annotations

import logging
import re
import uuid

import structlog
from fastapi import APIRouter, WebSocket
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy import select

from api.auth.deps import current_user
from api.core.db import get_sessionmaker
from api.core.problems import Problem
from api.notifications.hub import Hub
from api.notifications.models import NotificationCounter
from api.notifications.subscriber import Subscriber, serve

log = structlog.get_logger(__name__)

router = APIRouter(tags=["notifications"])

CHANNELS = frozenset({"notifications", "market"})
DEFAULT_CHANNELS = frozenset({"notifications"})
CLOSE_UNAUTHORIZED = 4401
CLOSE_BAD_REQUEST = 4400


async def authenticate(token: str | None) -> uuid.UUID | None:
    """The user id of a token the REST API would accept, else None."""
    if not token:
        return None
    async with get_sessionmaker()() as session:
        try:
            credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
            user = await current_user(session, credentials)
        except Problem:
            return None
        return user.id


TOKEN_IN_QUERY = re.compile(r"(?<=[?&]token=)[^&\s\"]+")


class HideQueryTokens(logging.Filter):
    """Blank ``token=`` in uvicorn's own lines: it logs every WebSocket's path with its
    query string ("WebSocket /api/v1/ws?token=..." [accepted]), even without access logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                TOKEN_IN_QUERY.sub("[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        if isinstance(record.msg, str) and "token=" in record.msg:
            record.msg = TOKEN_IN_QUERY.sub("[redacted]", record.msg)
        return True


def hide_query_tokens() -> None:
    """Install :class:`HideQueryTokens` on uvicorn's loggers (idempotent)."""
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, HideQueryTokens) for f in logger.filters):
            logger.addFilter(HideQueryTokens())


def parse_channels(raw: str | None) -> frozenset[str] | None:
    if raw is None or not raw.strip():
        return DEFAULT_CHANNELS
    wanted = frozenset(c.strip() for c in raw.split(",") if c.strip())
    return wanted if wanted and wanted <= CHANNELS else None


def parse_after_seq(raw: str | None) -> int | None:
    """The integer, None when absent; raises ValueError when malformed."""
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise ValueError("after_seq")
    return int(raw)


async def current_seq(user_id: uuid.UUID) -> int:
    async with get_sessionmaker()() as session:
        last = await session.scalar(
            select(NotificationCounter.last_seq).where(NotificationCounter.user_id == user_id)
        )
        return int(last or 0)


def hub_of(websocket: WebSocket) -> Hub:
    hub = getattr(websocket.app.state, "live_hub", None)
    if hub is None:  # an app run without its lifespan (in-process tests)
        raise RuntimeError("the live hub is not running (application lifespan not started)")
    return hub  # type: ignore[no-any-return]


@router.websocket("/ws")
async def live(websocket: WebSocket) -> None:
    params = websocket.query_params
    user_id = await authenticate(params.get("token"))
    channels = parse_channels(params.get("channels"))
    try:
        after_seq = parse_after_seq(params.get("after_seq"))
    except ValueError:
        after_seq, channels = None, None
    start = 0
    if user_id is not None and channels is not None:
        start = after_seq if after_seq is not None else await current_seq(user_id)
    await websocket.accept()
    if user_id is None:
        await websocket.close(CLOSE_UNAUTHORIZED, "invalid or expired access token")
        return
    if channels is None:
        await websocket.close(CLOSE_BAD_REQUEST, "channels: notifications,market; "
                              "after_seq: a non-negative integer")
        return
    hub = hub_of(websocket)
    subscriber = Subscriber(user_id, start, channels)
    hub.add(subscriber)
    if after_seq is not None:
        subscriber.wake()  # replay what was stored after N first
    try:
        ping = hub.settings.ws_ping_seconds
        await serve(websocket, subscriber, fetches=hub.fetches, ping_seconds=ping)
    finally:
        hub.remove(subscriber)
