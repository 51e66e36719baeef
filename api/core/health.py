"""Liveness (process up) and readiness (database, Redis and Kafka broker reachable).

Readiness checks run concurrently with short timeouts so a load balancer probe
answers in about a second even when a dependency hangs. The Solana RPC and the
Arweave gateway are reported too, but only as *degraded*: the API keeps serving
while they are down (mints wait and retry in the background), so pulling the
API out of a load balancer for them would turn a slow mint into an outage.

Probes are exempt from rate limits, so ``/readyz`` must stay cheap under any
request rate: the answer is computed at most once a second per process (callers
within that second, or while it is being computed, share it), the broker is asked
through one long-lived admin client, and that blocking call runs on the probe's
own two-thread executor, never on the default thread pool that argon2 hashing
and image sealing share (a hung broker cannot starve logins).
"""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.core.cache import get_redis
from api.core.db import get_engine
from api.core.problems import PROBLEM_JSON, problem_responses
from ece.settings import get_settings

router = APIRouter(tags=["health"])

CHECK_TIMEOUT = 2.0
CACHE_SECONDS = 1.0

# The blocking checks' own threads (a hung broker call keeps one until its timeout).
_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="readyz")
_admin: tuple[str, Any] | None = None  # (bootstrap, the shared AdminClient)


async def _database() -> None:
    async with get_engine().connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _redis() -> None:
    await get_redis().ping()


def _kafka_admin() -> Any:
    """One admin client per process (per bootstrap address), created on first use."""
    global _admin
    from ece import kafka

    bootstrap = get_settings().kafka_bootstrap
    if _admin is None or _admin[0] != bootstrap:
        client = kafka.admin(bootstrap, **{"socket.timeout.ms": 1500, "log_level": 0})
        _admin = (bootstrap, client)
    return _admin[1]


def _kafka_sync() -> None:
    _kafka_admin().list_topics(timeout=1.5)


async def _kafka() -> None:
    await asyncio.get_running_loop().run_in_executor(_executor, _kafka_sync)


async def _solana() -> None:
    async with httpx.AsyncClient(timeout=CHECK_TIMEOUT) as client:
        response = await client.post(
            get_settings().solana_rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "getHealth"}
        )
        response.raise_for_status()
        if response.json().get("result") != "ok":
            raise RuntimeError(f"getHealth: {response.text[:100]}")


async def _arweave() -> None:
    async with httpx.AsyncClient(timeout=CHECK_TIMEOUT) as client:
        (await client.get(f"{get_settings().arweave_url}/info")).raise_for_status()


CHECKS = {
    "database": _database,
    "redis": _redis,
    "kafka": _kafka,
    "solana": _solana,
    "arweave": _arweave,
}
# Parts whose failure degrades the service (reported) without making it unready.
DEGRADING = frozenset({"solana", "arweave"})


async def _run(name: str) -> tuple[str, str | None]:
    try:
        await asyncio.wait_for(CHECKS[name](), CHECK_TIMEOUT)
        return name, None
    except Exception as exc:  # any failure means "not ready"; say which and why
        return name, f"{type(exc).__name__}: {exc}"[:200]


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


class _Cached:
    """The last readiness answer, its time and the settings it checked; the computation
    in flight, if any (a different settings object, e.g. a test's, is a miss)."""

    at = 0.0
    settings: object = None
    answer: tuple[dict[str, Any], int] | None = None
    inflight: asyncio.Task[tuple[dict[str, Any], int]] | None = None


async def _compute() -> tuple[dict[str, Any], int]:
    results = dict(await asyncio.gather(*(_run(name) for name in CHECKS)))
    checks: dict[str, Any] = {name: (err or "ok") for name, err in results.items()}
    failing = [name for name, err in results.items() if err and name not in DEGRADING]
    degraded = [name for name, err in results.items() if err and name in DEGRADING]
    if not failing:
        status = "degraded" if degraded else "ready"
        return {"status": status, "degraded": degraded, "checks": checks}, 200
    return (
        {
            "type": "urn:ece:problem:not_ready",
            "title": "Service Unavailable",
            "status": 503,
            "detail": f"not ready: {', '.join(failing)} unreachable",
            "code": "not_ready",
            "failing": failing,
            "degraded": degraded,
            "checks": checks,
        },
        503,
    )


async def readiness() -> tuple[dict[str, Any], int]:
    """The readiness body and status, at most :data:`CACHE_SECONDS` old."""
    settings = get_settings()
    if _Cached.settings is not settings:
        _Cached.settings, _Cached.answer, _Cached.inflight = settings, None, None
    if _Cached.answer is not None and time.monotonic() - _Cached.at < CACHE_SECONDS:
        return _Cached.answer
    task = _Cached.inflight
    if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
        task = _Cached.inflight = asyncio.ensure_future(_compute())
    answer = await asyncio.shield(task)
    if _Cached.inflight is task:
        _Cached.answer, _Cached.at, _Cached.inflight = answer, time.monotonic(), None
    return answer


@router.get(
    "/readyz",
    summary="Readiness: database, cache and broker reachable",
    responses=problem_responses(503),  # not_ready, with ``failing``, ``degraded``, ``checks``
)
async def readyz() -> JSONResponse:
    body, status = await readiness()
    media_type = PROBLEM_JSON if status != 200 else "application/json"
    return JSONResponse(body, status_code=status, media_type=media_type)
