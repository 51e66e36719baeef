"""Prometheus metrics: request count/latency by route template and status, errors,
DB pool use and card-cache hits/misses, served at ``GET /metrics``.

Labels use the route *template* (``/api/v1/cards/{card_id}``), never the raw path,
so the number of series stays bounded whatever URLs clients send.
"""

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "ece_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
ERRORS = Counter(
    "ece_http_errors_total", "HTTP answers with status >= 500", ["method", "route", "status"]
)
LATENCY = Histogram(
    "ece_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CACHE = Counter("ece_cache_requests_total", "Card cache lookups", ["cache", "result"])
CACHE_WRITES = Counter("ece_cache_writes_total", "Card cache writes", ["cache", "result"])
DB_POOL_CHECKED_OUT = Gauge("ece_db_pool_checked_out", "Database connections in use")
DB_POOL_SIZE = Gauge("ece_db_pool_size", "Database connections held by the pool")


def cache_hit(cache: str) -> None:
    CACHE.labels(cache, "hit").inc()


def cache_miss(cache: str) -> None:
    CACHE.labels(cache, "miss").inc()


def route_template(scope: Scope) -> str:
    """The full route template of a matched request, e.g. ``/api/v1/cards/{card_id}``.

    FastAPI keeps included routers nested, so ``scope["route"]`` only knows its path
    relative to the enclosing prefix. Prefixes are static, so they are the leading
    segments of the concrete path that the template does not account for.
    """
    template = getattr(scope.get("route"), "path_format", None)
    if not template:
        return "unmatched"
    parts = scope["path"].split("/")
    prefix = "/".join(parts[: max(len(parts) - template.count("/"), 0)])
    return prefix + template


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware) so streaming responses and lifespans are untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            labels = (scope["method"], route_template(scope), str(status))
            REQUESTS.labels(*labels).inc()
            LATENCY.labels(*labels).observe(time.perf_counter() - start)
            if status >= 500:
                ERRORS.labels(*labels).inc()


def _update_pool_gauges() -> None:
    from api.core.db import get_engine

    if not get_engine.cache_info().currsize:
        return
    pool = get_engine().pool
    checked_out = getattr(pool, "checkedout", None)
    size = getattr(pool, "size", None)
    if callable(checked_out):
        DB_POOL_CHECKED_OUT.set(checked_out())
    if callable(size):
        DB_POOL_SIZE.set(size())


async def metrics_endpoint(_request: Request) -> Response:
    _update_pool_gauges()
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
