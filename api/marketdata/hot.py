"""Reading the Redis hot set (layout: :mod:`ece.contracts.market_data`).

Every reader returns ``None`` when the hot set cannot answer: Redis is down, or the
writer's ready marker is missing (the set was wiped and is being rebuilt, or the
stream job is not running). The caller then computes the answer from Postgres, so
a half-built or abandoned hot set is never presented as current.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.core.metrics import cache_hit, cache_miss
from ece.contracts import market_data as md

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Figures:
    """What one scope's sorted sets say right now."""

    sales_24h: int
    volume_24h_cents: int
    floor_listing_cents: int | None
    active_listings: int
    active_auctions: int
    updated_at: datetime | None
    ready_at: datetime


def _parse_time(raw: bytes | str | None) -> datetime | None:
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class HotSet:
    """Market figures from Redis; ``None`` means "ask Postgres"."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def ready(self) -> datetime | None:
        """The writer's ready marker (its last refresh), or None when not ready."""
        try:
            raw = await self.redis.get(md.READY_KEY)
        except RedisError as exc:
            log.warning("market_data_redis_unavailable", error=str(exc))
            return None
        if raw is None:
            cache_miss("market_data")
            return None
        try:
            return _parse_time(raw) or datetime.now(UTC)
        except ValueError:
            return datetime.now(UTC)

    async def figures(self, scope: str) -> Figures | None:
        ready_at = await self.ready()
        if ready_at is None:
            return None
        since_ms = int(time.time() * 1000) - md.DAY_MS
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.zrangebyscore(md.sales_key(scope), since_ms, "+inf")
            pipe.zrange(md.listings_key(scope), 0, 0, withscores=True)
            pipe.zcard(md.listings_key(scope))
            pipe.scard(md.auctions_key(scope))
            pipe.get(md.updated_key(scope))
            sales, floor, listings, auctions, updated = await pipe.execute()
        except RedisError as exc:
            log.warning("market_data_redis_unavailable", error=str(exc))
            return None
        cache_hit("market_data")
        return Figures(
            sales_24h=len(sales),
            volume_24h_cents=sum(md.member_price(m) for m in sales),
            floor_listing_cents=int(floor[0][1]) if floor else None,
            active_listings=int(listings),
            active_auctions=int(auctions),
            updated_at=_parse_time(updated),
            ready_at=ready_at,
        )

    async def last_sale(self, card_id: uuid.UUID) -> tuple[int, datetime] | None | bool:
        """``(price, at)``, ``None`` for no sale yet, ``False`` when Redis cannot say."""
        try:
            raw = await self.redis.hgetall(md.last_sale_key(str(card_id)))  # type: ignore[misc]
        except RedisError as exc:
            log.warning("market_data_redis_unavailable", error=str(exc))
            return False
        if not raw:
            return None
        at = _parse_time(raw.get(b"at"))
        if at is None:
            return None
        return int(raw[b"price_cents"]), at

    async def leaderboard(self, kind: str, limit: int) -> list[tuple[uuid.UUID, int]] | None:
        if await self.ready() is None:
            return None
        try:
            rows = await self.redis.zrevrange(md.leaderboard_key(kind), 0, limit - 1,
                                              withscores=True)
        except RedisError as exc:
            log.warning("market_data_redis_unavailable", error=str(exc))
            return None
        return [(uuid.UUID(member.decode()), int(score)) for member, score in rows if score > 0]

    async def portfolio(self, user_id: uuid.UUID) -> dict[uuid.UUID, int] | None:
        if await self.ready() is None:
            return None
        try:
            raw = await self.redis.hgetall(md.portfolio_key(str(user_id)))  # type: ignore[misc]
        except RedisError as exc:
            log.warning("market_data_redis_unavailable", error=str(exc))
            return None
        return {uuid.UUID(k.decode()): int(v) for k, v in raw.items()}
