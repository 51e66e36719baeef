"""The Redis hint of auction end times (a sorted set) that lets the closer sleep
until the next end instead of the full poll interval.

Postgres is the truth (``status = 'active' AND ends_at <= now()``); losing or
missing a hint costs latency, never correctness, so every call here is best effort.
"""

import contextlib
import uuid
from datetime import datetime

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.auctions.models import Auction

log = structlog.get_logger(__name__)

ENDS_KEY = "ece:auctions:ends"


async def announce_end(redis: Redis, auction_id: uuid.UUID, ends_at: datetime) -> None:
    """Tell closers when this auction ends (best effort: they also poll Postgres)."""
    try:
        await redis.zadd(ENDS_KEY, {str(auction_id): ends_at.timestamp()})
    except RedisError as exc:
        log.warning("auction_end_announce_failed", auction_id=str(auction_id), error=str(exc))


async def forget_end(redis: Redis, auction_id: uuid.UUID) -> None:
    try:
        await redis.zrem(ENDS_KEY, str(auction_id))
    except RedisError as exc:
        log.warning("auction_end_forget_failed", auction_id=str(auction_id), error=str(exc))


async def next_end_hint(redis: Redis) -> float | None:
    """The earliest announced end time (epoch seconds), or None (empty or Redis down)."""
    try:
        first = await redis.zrange(ENDS_KEY, 0, 0, withscores=True)
    except RedisError:
        return None
    return float(first[0][1]) if first else None


async def drop_stale_hints(redis: Redis, session: AsyncSession, before: float) -> None:
    """Remove announced ends at or before ``before`` that are no longer active auctions
    (ended by another closer, cancelled, or extended and re-announced)."""
    try:
        members = await redis.zrangebyscore(ENDS_KEY, "-inf", before)
    except RedisError:
        return
    if not members:
        return
    ids = [uuid.UUID(m.decode() if isinstance(m, bytes) else m) for m in members]
    active = set(
        await session.scalars(
            select(Auction.id).where(Auction.id.in_(ids), Auction.status == "active")
        )
    )
    await session.rollback()
    stale = [str(i) for i in ids if i not in active]
    if stale:
        with contextlib.suppress(RedisError):
            await redis.zrem(ENDS_KEY, *stale)
