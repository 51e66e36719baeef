"""The default ``Cache-Control`` of answers that did not choose one.

Routes that know their caching say so themselves: card documents ``no-cache`` with
an ETag (``api.core.etag``: a PATCH must be seen at once), public aggregates
``public, max-age=5, stale-while-revalidate=30`` (``api.marketdata.router``). Every
other answer to a request that carried credentials is somebody's own data
(balances, notifications, offers), and a shared cache or a CDN must never keep
it: ``private, no-store``. A pure ASGI middleware, so streaming answers and
WebSocket upgrades pass untouched.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PRIVATE = "private, no-store"


class DefaultCacheControl:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        credentialed = any(name in (b"authorization", b"cookie")
                           for name, _ in scope.get("headers", ()))
        if not credentialed:
            await self.app(scope, receive, send)
            return

        async def send_with_default(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "cache-control" not in headers:
                    headers["Cache-Control"] = PRIVATE
            await send(message)

        await self.app(scope, receive, send_with_default)
