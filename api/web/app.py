"""The FastAPI application factory (``uvicorn api.web.app:create_app --factory``).

Everything is assembled here and nowhere else: logging, middleware (request id +
access log, metrics, gzip), problem+json handlers, and the domain routers under
``/api/v1``. Health and metrics answer both at the root (probes, Prometheus) and
under ``/api/v1`` (the contract's base path).
"""

import gc
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi_offline
import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auctions.router import router as auctions_router
from api.audit.router import router as audit_router
from api.auth.router import router as auth_router
from api.cards.fast_read import CachedCardReads
from api.cards.images import router as card_images_router
from api.cards.router import router as cards_router
from api.cards.valuations import router as valuations_router
from api.core.cache import close_redis
from api.core.db import dispose_engine
from api.core.health import router as health_router
from api.core.logs import configure_logging
from api.core.metrics import MetricsMiddleware, metrics_endpoint, route_template
from api.core.problems import PROBLEM_JSON, install_problem_handlers
from api.ledger.router import router as ledger_router
from api.market.router import router as market_router
from api.marketdata.router import router as marketdata_router
from api.nfts.router import router as nfts_router
from api.notifications.hub import Hub
from api.notifications.live import hide_query_tokens
from api.notifications.live import router as live_router
from api.notifications.router import router as notifications_router
from api.oauth.router import router as oauth_router
from api.portfolio.router import router as portfolio_router
from api.trades.router import router as trades_router
from api.users.router import router as users_router
from api.wallets.router import router as wallets_router
from api.watchlists.router import router as watchlists_router
from api.web.body_limit import BodyLimitMiddleware
from api.web.cache_policy import DefaultCacheControl
from api.web.idempotency import Replayed, replay_handler
from api.web.ratelimit import RateLimitMiddleware
from ece.settings import get_settings

API_PREFIX = "/api/v1"
DOCS_URL = f"{API_PREFIX}/docs"
REDOC_URL = f"{API_PREFIX}/redoc"
DOCS_ASSETS_URL = f"{API_PREFIX}/docs/assets"
# Swagger UI and ReDoc bundles, served from the installed ``fastapi-offline`` wheel so
# the interactive docs work without internet (FastAPI's defaults load them from a CDN).
DOCS_ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
# The example live client (plain HTML + JS, no build step); its service worker is served
# from /live/sw.js so that its scope covers the page at /live/.
LIVE_URL = "/live"
LIVE_DIR = Path(__file__).parent / "static" / "live"
log = structlog.get_logger("api.access")


class RequestContextMiddleware:
    """Give each request an id (echoed as ``X-Request-ID``) and one access-log line.

    Only method, route template, status and timing are logged: never headers or
    bodies, which carry tokens and passwords.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode()[:64]
        request_id = incoming or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            log.info(
                "request",
                method=scope["method"],
                route=route_template(scope),
                status=status,
                ms=round((time.perf_counter() - start) * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    hide_query_tokens()  # uvicorn logs each WebSocket's query string, /ws?token=... included
    hub = Hub(get_settings())  # this process's live sockets (/ws): doorbell + sweep
    await hub.start()
    app.state.live_hub = hub
    # Everything loaded so far (the app, its routes and models: ~175,000 objects) lives as
    # long as the process: out of the collector's sight, a full collection no longer
    # walks it, which under load stalled every request in flight (P1's p99).
    gc.freeze()
    yield
    await hub.stop()
    await close_redis()
    await dispose_engine()


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details; branch on `code`.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}


def _problem_answer(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with 422s described as the problem+json they really are, and
    the 400 FastAPI answers on every JSON body it cannot decode (bytes that are not
    UTF-8: a JSON syntax error is a 422) declared where it can happen (the fuzzing test,
    ``tests/api/test_fuzz_openapi.py``, found it undeclared)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if "422" in responses:
                responses["422"] = _problem_answer(
                    "Validation error (problem+json, code validation_error)"
                )
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                responses.setdefault("400", _problem_answer(
                    "Unreadable body, e.g. not UTF-8 (problem+json, code bad_request)"
                ))
    app.openapi_schema = schema
    return schema


def _install_docs(app: FastAPI) -> None:
    """Swagger UI at ``/api/v1/docs`` and ReDoc at ``/api/v1/redoc``, with local assets."""
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS_DIR), name="docs-assets")
    oauth2_redirect_url = str(app.swagger_ui_oauth2_redirect_url)

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} — Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect_url}",
            swagger_js_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
        )

    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} — ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )

    app.add_api_route(DOCS_URL, swagger_ui, include_in_schema=False)
    app.add_api_route(oauth2_redirect_url, swagger_ui_redirect, include_in_schema=False)
    app.add_api_route(REDOC_URL, redoc, include_in_schema=False)


def _install_live_page(app: FastAPI) -> None:
    """``/live/``: the example client of ``/ws`` and Web Push (``api/web/static/live``)."""

    async def live_page() -> RedirectResponse:
        return RedirectResponse(f"{LIVE_URL}/", status_code=307)

    app.add_api_route(LIVE_URL, live_page, include_in_schema=False)
    app.mount(LIVE_URL, StaticFiles(directory=LIVE_DIR, html=True), name="live")


def create_app() -> FastAPI:
    """A fresh application (tests build one per settings object)."""
    configure_logging()
    app = FastAPI(
        title="ECE — Elite Card Exchange API",
        version="1.0.0",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # served by _install_docs, from local assets
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=f"{DOCS_URL}/oauth2-redirect",
        lifespan=lifespan,
    )
    _install_docs(app)
    install_problem_handlers(app)
    app.add_exception_handler(Replayed, replay_handler)

    v1 = APIRouter(prefix=API_PREFIX)
    v1.include_router(health_router)
    v1.include_router(auth_router)
    v1.include_router(oauth_router)
    v1.include_router(users_router)
    v1.include_router(cards_router)
    v1.include_router(card_images_router)
    v1.include_router(valuations_router)
    v1.include_router(ledger_router)
    v1.include_router(market_router)
    v1.include_router(portfolio_router)
    v1.include_router(marketdata_router)
    v1.include_router(audit_router)
    v1.include_router(wallets_router)
    v1.include_router(trades_router)
    v1.include_router(auctions_router)
    v1.include_router(nfts_router)
    v1.include_router(notifications_router)
    v1.include_router(watchlists_router)
    v1.include_router(live_router)
    v1.add_api_route("/metrics", metrics_endpoint, include_in_schema=False)
    app.include_router(v1)
    app.include_router(health_router, include_in_schema=False)
    app.add_api_route("/metrics", metrics_endpoint, include_in_schema=False)
    _install_live_page(app)

    # Last added = outermost: the request id wraps everything; innermost, cached card
    # reads are answered before routing (api.cards.fast_read), inside gzip.
    app.add_middleware(CachedCardReads, prefix=API_PREFIX)
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    app.add_middleware(DefaultCacheControl)  # credentialed answers: private, no-store
    app.add_middleware(BodyLimitMiddleware)  # 413 past 1 MiB (images 5 MiB), while streaming
    app.add_middleware(RateLimitMiddleware)  # inside metrics: 429s are counted
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(RequestContextMiddleware)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
