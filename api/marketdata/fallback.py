"""The same figures computed from Postgres, for when the hot set cannot answer.

These are the definitions the stream-fed hot set must agree with (the end-to-end
tests compare the two): a sale is a fixed-price sale (``sales``), "24 h" is the
last 24 hours of commit time, the floor is the cheapest active listing, and a
card's value is its newest valuation (``at``, then id).
"""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_FILTERS = """
    (CAST(:set_name AS text) IS NULL OR c.set_name = :set_name)
    AND (CAST(:rarity AS text) IS NULL OR c.rarity = :rarity)
"""

CARD_PRICE_SQL = text("""
SELECT
    (SELECT price_cents FROM sales WHERE card_id = :card_id
      ORDER BY created_at DESC, id DESC LIMIT 1)                        AS last_sale_cents,
    (SELECT created_at FROM sales WHERE card_id = :card_id
      ORDER BY created_at DESC, id DESC LIMIT 1)                        AS last_sale_at,
    (SELECT count(*) FROM sales WHERE card_id = :card_id
      AND created_at > now() - interval '24 hours')                     AS sales_24h,
    (SELECT coalesce(sum(price_cents), 0) FROM sales WHERE card_id = :card_id
      AND created_at > now() - interval '24 hours')                     AS volume_24h_cents,
    (SELECT min(price_cents) FROM listings WHERE card_id = :card_id
      AND status = 'active')                                            AS floor_listing_cents,
    now()                                                               AS updated_at
""")

MARKET_STATS_SQL = text(f"""
SELECT
    (SELECT count(*) FROM sales s JOIN cards c ON c.id = s.card_id
      WHERE s.created_at > now() - interval '24 hours' AND {_FILTERS})  AS sales_24h,
    (SELECT coalesce(sum(s.price_cents), 0) FROM sales s JOIN cards c ON c.id = s.card_id
      WHERE s.created_at > now() - interval '24 hours' AND {_FILTERS})  AS volume_24h_cents,
    (SELECT count(*) FROM listings l JOIN cards c ON c.id = l.card_id
      WHERE l.status = 'active' AND {_FILTERS})                         AS active_listings,
    (SELECT count(*) FROM auctions a JOIN cards c ON c.id = a.card_id
      WHERE a.status = 'active' AND {_FILTERS})                         AS active_auctions,
    (SELECT min(l.price_cents) FROM listings l JOIN cards c ON c.id = l.card_id
      WHERE l.status = 'active' AND {_FILTERS})                         AS floor_listing_cents
""")

TRADERS_SQL = text("""
SELECT user_id, sum(price_cents) AS score FROM (
    SELECT buyer_id AS user_id, price_cents FROM sales
     WHERE created_at > now() - interval '24 hours'
    UNION ALL
    SELECT seller_id, price_cents FROM sales
     WHERE created_at > now() - interval '24 hours'
) trades
GROUP BY user_id
ORDER BY score DESC, user_id DESC
LIMIT :limit
""")

COLLECTORS_SQL = text("""
SELECT c.owner_id AS user_id, sum(v.value_cents) AS score
FROM cards c
JOIN LATERAL (
    SELECT value_cents FROM card_valuations
     WHERE card_id = c.id ORDER BY at DESC, id DESC LIMIT 1
) v ON true
GROUP BY c.owner_id
HAVING sum(v.value_cents) > 0
ORDER BY score DESC, user_id DESC
LIMIT :limit
""")


async def card_price(session: AsyncSession, card_id: uuid.UUID) -> dict[str, object]:
    row = (await session.execute(CARD_PRICE_SQL, {"card_id": card_id})).mappings().one()
    return dict(row)


async def market_stats(session: AsyncSession, set_name: str | None,
                       rarity: str | None) -> dict[str, object]:
    params = {"set_name": set_name, "rarity": rarity}
    row = (await session.execute(MARKET_STATS_SQL, params)).mappings().one()
    return dict(row)


async def leaderboard(session: AsyncSession, kind: str,
                      limit: int) -> list[tuple[uuid.UUID, int]]:
    query = TRADERS_SQL if kind == "traders" else COLLECTORS_SQL
    rows = (await session.execute(query, {"limit": limit})).all()
    return [(user_id, int(score)) for user_id, score in rows]
