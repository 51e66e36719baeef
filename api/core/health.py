"""Liveness (process up) and readiness (database, Redis and Kafka broker reachable).

Readiness checks run concurrently with short timeouts so a load balancer probe
answers in about a second even when a dependency hangs. The Solana RPC and the
Arweave gateway are reported too, but only as *degraded*: the API keeps serving
while they are down (mints wait and retry in the background), so pulling the
API out of a load balancer for them would turn a slow mint into an outage.
"""

import asyncio
from typing import Any

import httpx
from anyio import to_thread
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.core.cache import get_redis
from api.core.db import get_engine
from api.core.problems import PROBLEM_JSON
from ece.settings import get_settings

router = APIRouter(tags=["health"])

CHECK_TIMEOUT = 2.0


async def _database() -> None:
    async with get_engine().connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _redis() -> None:
    await get_redis().ping()


def _kafka_sync() -> None:
    from ece import kafka

    kafka.admin(get_settings(), **{"socket.timeout.ms": 1500, "log_level": 0}).list_topics(
        timeout=1.5
    )


async def _kafka() -> None:
    await to_thread.run_sync(_kafka_sync, abandon_on_cancel=True)


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


@router.get("/readyz", summary="Readiness: database, cache and broker reachable")
async def readyz() -> JSONResponse:
    results = dict(await asyncio.gather(*(_run(name) for name in CHECKS)))
    checks: dict[str, Any] = {name: (err or "ok") for name, err in results.items()}
    failing = [name for name, err in results.items() if err and name not in DEGRADING]
    degraded = [name for name, err in results.items() if err and name in DEGRADING]
    if not failing:
        status = "degraded" if degraded else "ready"
        return JSONResponse({"status": status, "degraded": degraded, "checks": checks})
    return JSONResponse(
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
        status_code=503,
        media_type=PROBLEM_JSON,
    )
