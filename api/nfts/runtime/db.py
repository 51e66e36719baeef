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
                try:
                    await conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), {"a": a, "b": b})
                    await conn.commit()
                except BaseException as exc:
                    # Cancelled or the connection broke: never hand a connection that may
                    # still hold the lock back to the pool; closing it releases the lock.
                    with contextlib.suppress(Exception):
                        await conn.invalidate()
                    if not isinstance(exc, Exception):
                        raise
