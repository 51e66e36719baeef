"""A user's portfolio computed from the database in one query.

The value of a card is its newest valuation (``card_valuations`` ordered by
``at, id``); a card that was never sold or appraised is worth 0 rather than
missing, so ``card_count`` always equals the number of cards the user owns.

The stream keeps the same figures in the Redis hot set (every owned card, valued or
0, per user): when it is ready it answers, so a portfolio read costs no join.
"""

import uuid

from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.cards.models import Card, CardValuation
from api.core.problems import not_found
from api.marketdata.hot import HotSet
from api.portfolio.schemas import PortfolioCard, PortfolioOut
from api.users.models import User


def _answer(user_id: uuid.UUID, values: list[tuple[uuid.UUID, int]]) -> PortfolioOut:
    cards = [PortfolioCard(card_id=card_id, value_cents=int(v)) for card_id, v in values]
    return PortfolioOut(user_id=user_id, card_count=len(cards),
                        value_cents=sum(c.value_cents for c in cards), cards=cards)


async def portfolio(session: AsyncSession, user_id: uuid.UUID,
                    redis: Redis | None = None) -> PortfolioOut:
    if await session.get(User, user_id) is None:
        raise not_found("user")
    hot = await HotSet(redis).portfolio(user_id) if redis is not None else None
    if hot is not None:
        ranked = sorted(hot.items(), key=lambda item: (-item[1], str(item[0])))
        return _answer(user_id, ranked)
    latest = (
        select(CardValuation.value_cents)
        .where(CardValuation.card_id == Card.id)
        .order_by(CardValuation.at.desc(), CardValuation.id.desc())
        .limit(1)
        .correlate(Card)
        .scalar_subquery()
    )
    value = func.coalesce(latest, 0).label("value_cents")
    rows = (
        await session.execute(
            select(Card.id, value).where(Card.owner_id == user_id).order_by(value.desc(), Card.id)
        )
    ).all()
    return _answer(user_id, [(card_id, int(v)) for card_id, v in rows])
