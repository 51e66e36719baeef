"""The workers' database: an own engine, and one job per key across processes.

:func:`advisory_lock` is a session-level Postgres advisory lock, released by the
server if the worker dies.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from ece.settings import Settings


def make_sessions(
    settings: Settings, pool_size: int
) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    """A worker's own engine, sized for its lock connections plus short transactions."""
    engine = create_async_engine(
        settings.sqlalchemy_url, pool_size=pool_size, max_overflow=pool_size // 2,
        pool_pre_ping=True,
    )
    return engine, async_sessionmaker(engine, expire_on_commit=False)


def lock_key(namespace: int, key: uuid.UUID) -> tuple[int, int]:
    """``pg_advisory_lock(int4, int4)`` arguments: a namespace per worker, 32 bits of the id."""
    return namespace, int.from_bytes(key.bytes[:4], "big", signed=True)


async def _release(conn: AsyncConnection, unlock: str, params: dict[str, object]) -> None:
    """Run ``unlock`` on the connection holding the locks. Cancelled, or the connection
    broke: never hand a connection that may still hold a lock back to the pool; closing
    it releases the lock (a cancellation is re-raised once that is done)."""
    try:
        await conn.execute(text(unlock), params)
        await conn.commit()
    except BaseException as exc:
        with contextlib.suppress(Exception):
            await conn.invalidate()
        if not isinstance(exc, Exception):
            raise


@contextlib.asynccontextmanager
async def advisory_lock(engine: AsyncEngine, namespace: int, key: uuid.UUID) -> AsyncIterator[bool]:
    """Yield True if this process now owns ``key`` (else another worker does: skip it)."""
    a, b = lock_key(namespace, key)
    async with engine.connect() as conn:
        got = bool(await conn.scalar(text("SELECT pg_try_advisory_lock(:a, :b)"), {"a": a, "b": b}))
        await conn.commit()
        try:
            yield got
        finally:
            if got:
                await _release(conn, "SELECT pg_advisory_unlock(:a, :b)", {"a": a, "b": b})


@contextlib.asynccontextmanager
async def advisory_claim(
    engine: AsyncEngine, namespace: int, candidates: str, limit: int, **params: object
) -> AsyncIterator[list[uuid.UUID]]:
    """Claim up to ``limit`` ids of ``candidates`` (a SELECT of ``id``, ordered, with its
    own LIMIT) in ONE statement: each returned id is advisory-locked by this connection
    with the same key :func:`advisory_lock` uses, so the batched and the single-NFT
    paths exclude each other. Ids another worker holds are skipped. All are released on
    exit (or by the server, if the worker dies)."""
    sql = text(
        f"SELECT c.id FROM ({candidates}) AS c WHERE pg_try_advisory_lock(:ns, "  # noqa: S608
        "('x' || substr(replace(c.id::text, '-', ''), 1, 8))::bit(32)::int4) LIMIT :claim"
    )
    async with engine.connect() as conn:
        ids = list((await conn.scalars(sql, {"ns": namespace, "claim": limit, **params})).all())
        await conn.commit()
        try:
            yield ids
        finally:
            if ids:
                await _release(conn, "SELECT pg_advisory_unlock_all()", {})
