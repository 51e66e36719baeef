"""Cached card reads answered before routing (issue 14, P1).

``GET /api/v1/cards/{card_id}`` is the platform's hottest public read, and a cache
hit needs none of what FastAPI does per request: matching the path against every
route, solving dependencies, the exception layers. Profiled under wrk, that work
took more CPU than the hit itself. This pure-ASGI layer sits inside every other
middleware (request id and access log, metrics, rate limits, body limit, cache
policy, gzip all still apply) and answers hits from Redis with the route's own
:func:`api.cards.router.card_response`, so the bytes and headers are the same.
Anything else (a miss, a malformed id, another method) goes to the router, where
:func:`api.cards.router.get_card` reads through and fills the cache; after a miss
here it goes straight to the database (``CACHE_ASKED``), so a miss costs one Redis
read, and one warning when Redis is down.
"""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import Headers
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from api.cards.router import CACHE_ASKED, card_response, get_card, router
from api.core.cache import get_card_cache

_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _card_route() -> BaseRoute:
    """The router's own route object, so metrics and the access log name the request
    by its template exactly as when the router serves it."""
    return next(r for r in router.routes if getattr(r, "endpoint", None) is get_card)


class CachedCardReads:
    """Serve cache hits of one card's document; pass everything else on."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.path = re.compile(rf"{re.escape(prefix)}{re.escape(router.prefix)}/({_UUID})")
        self.route = _card_route()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            self.path.fullmatch(scope["path"])
            if scope["type"] == "http" and scope["method"] == "GET"
            else None
        )
        if match is not None:
            card_id = match.group(1)
            cached = await get_card_cache().get_json(card_id)
            if cached is not None:
                scope["route"] = self.route
                response = card_response(uuid.UUID(card_id), *cached,
                                         Headers(scope=scope).get("if-none-match"))
                await response(scope, receive, send)
                return
            scope[CACHE_ASKED] = True
        await self.app(scope, receive, send)
