"""Liveness (process up) and readiness (database, Redis and Kafka broker reachable).

Readiness checks run concurrently with short timeouts so a load balancer probe
answers in about a second even when a dependency hangs.
"""

import asyncio
from typing import Any

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
    from confluent_kafka.admin import AdminClient

    client = AdminClient(
        {
            "bootstrap.servers": get_settings().kafka_bootstrap,
            "socket.timeout.ms": 1500,
            "log_level": 0,
        }
    )
    client.list_topics(timeout=1.5)


async def _kafka() -> None:
    await to_thread.run_sync(_kafka_sync, abandon_on_cancel=True)


CHECKS = {"database": _database, "redis": _redis, "kafka": _kafka}


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
    failing = [name for name, err in results.items() if err]
    if not failing:
        return JSONResponse({"status": "ready", "checks": checks})
    return JSONResponse(
        {
            "type": "urn:ece:problem:not_ready",
            "title": "Service Unavailable",
            "status": 503,
            "detail": f"not ready: {', '.join(failing)} unreachable",
            "code": "not_ready",
            "failing": failing,
            "checks": checks,
        },
        status_code=503,
        media_type=PROBLEM_JSON,
    )
