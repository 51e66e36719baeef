"""Prometheus metrics: request count/latency by route template and status, errors,
DB pool use and card-cache hits/misses, served at ``GET /metrics``.

Labels use the route *template* (``/api/v1/cards/{card_id}``), never the raw path,
so the number of series stays bounded whatever URLs clients send.

With several uvicorn workers (``ECE_API_WORKERS`` > 1) each worker is its own
process, and ``/metrics`` answers from whichever worker got the request. So the
API then runs prometheus_client's multiprocess mode (``ops.stack.api.serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at :func:`ece.settings.Settings.api_metrics_dir` before
the workers start): every worker writes its values to files there, and ``/metrics``
sums them over all workers, the gauges over the live ones.
"""

import contextlib
import re
import time
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
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
# Per worker; with several workers the answer sums the live workers' last values.
DB_POOL_CHECKED_OUT = Gauge("ece_db_pool_checked_out", "Database connections in use",
                            multiprocess_mode="livesum")
DB_POOL_SIZE = Gauge("ece_db_pool_size", "Database connections held by the pool",
                     multiprocess_mode="livesum")
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w*_(\d+)\.db$")


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


def _registry() -> CollectorRegistry:
    """This process's registry, or (several workers) one summing every worker's files.

    A worker uvicorn replaced (it died) keeps its counters, as Prometheus expects of a
    counter; its live-gauge files are dropped, or its last pool size would count forever.
    """
    from ece.processes import pid_alive
    from ece.settings import get_settings

    settings = get_settings()
    if settings.api_workers <= 1:
        return REGISTRY
    folder = settings.api_metrics_dir
    for path in Path(folder).glob("gauge_live*_*.db"):
        match = _LIVE_GAUGE_FILE.search(path.name)
        if match and not pid_alive(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):
                multiprocess.mark_process_dead(int(match.group(1)), str(folder))
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(folder))
    return registry


async def metrics_endpoint(_request: Request) -> Response:
    _update_pool_gauges()
    return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)
