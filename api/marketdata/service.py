"""Market data answers: the hot set when it can answer, else Postgres (never a guess).

Each answer says where it came from (``source``: ``hot`` or ``database``) so the
router can tell clients (``X-Data-Source``) and tests can prove both paths.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.cards.models import Card
from api.core.problems import not_found
from api.marketdata import fallback
from api.marketdata.hot import HotSet
from api.marketdata.schemas import CardPriceOut, LeaderboardEntry, LeaderboardOut, MarketStatsOut
from api.users.models import User
from ece.contracts import card_cache
from ece.contracts import market_data as md

USERNAME_TTL_S = 60.0
_usernames: dict[uuid.UUID, tuple[float, str]] = {}


async def _card_exists(session: AsyncSession, redis: Redis, card_id: uuid.UUID) -> bool:
    """The card cache answers for most cards; the row decides for the rest."""
    try:
        if await redis.exists(card_cache.document_key(str(card_id))):
            return True
    except RedisError:
        pass
    return await session.get(Card, card_id) is not None


async def card_price(session: AsyncSession, redis: Redis,
                     card_id: uuid.UUID) -> tuple[CardPriceOut, str]:
    if not await _card_exists(session, redis, card_id):
        raise not_found("card")
    hot = HotSet(redis)
    figures = await hot.figures(md.card_scope(str(card_id)))
    last = await hot.last_sale(card_id) if figures is not None else False
    if figures is None or last is False:
        row = await fallback.card_price(session, card_id)
        return CardPriceOut(card_id=card_id, **row), "database"
    price, at = last if isinstance(last, tuple) else (None, None)
    return CardPriceOut(
        card_id=card_id, last_sale_cents=price, last_sale_at=at,
        sales_24h=figures.sales_24h, volume_24h_cents=figures.volume_24h_cents,
        floor_listing_cents=figures.floor_listing_cents,
        updated_at=figures.updated_at or figures.ready_at,
    ), "hot"


async def market_stats(session: AsyncSession, redis: Redis, set_name: str | None,
                       rarity: str | None) -> tuple[MarketStatsOut, str]:
    figures = await HotSet(redis).figures(md.query_scope(set_name, rarity))
    if figures is None:
        row = await fallback.market_stats(session, set_name, rarity)
        return MarketStatsOut(**row), "database"
    return MarketStatsOut(
        sales_24h=figures.sales_24h, volume_24h_cents=figures.volume_24h_cents,
        active_listings=figures.active_listings, active_auctions=figures.active_auctions,
        floor_listing_cents=figures.floor_listing_cents,
    ), "hot"


async def _names(session: AsyncSession, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Usernames for a page of ranks, cached in-process for a minute (they rarely change,
    and a leaderboard read should not cost a query per entry)."""
    now = time.monotonic()
    names = {u: hit[1] for u in user_ids
             if (hit := _usernames.get(u)) is not None and now - hit[0] < USERNAME_TTL_S}
    missing = [u for u in user_ids if u not in names]
    if missing:
        rows = await session.execute(select(User.id, User.username).where(User.id.in_(missing)))
        for user_id, username in rows.all():
            _usernames[user_id] = (now, username)
            names[user_id] = username
    return names


async def leaderboard(session: AsyncSession, redis: Redis, kind: str,
                      limit: int) -> tuple[LeaderboardOut, str]:
    hot = HotSet(redis)
    ranked = await hot.leaderboard(kind, limit)
    source = "hot"
    updated_at = await hot.ready() if ranked is not None else None
    if ranked is None or updated_at is None:
        ranked, source, updated_at = (await fallback.leaderboard(session, kind, limit),
                                      "database", datetime.now(UTC))
    names = await _names(session, [user_id for user_id, _ in ranked])
    entries = [
        LeaderboardEntry(rank=rank, user_id=user_id, username=names.get(user_id, ""), score=score)
        for rank, (user_id, score) in enumerate(ranked, start=1)
    ]
    return LeaderboardOut(kind=kind, updated_at=updated_at, entries=entries), source  # type: ignore[arg-type]
