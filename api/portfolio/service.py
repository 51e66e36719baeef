"""A user's portfolio computed from the database in one query.

The value of a card is its newest valuation (``card_valuations`` ordered by
``at, id``); a card that was never sold or appraised is worth 0 rather than
missing, so ``card_count`` always equals the number of cards the user owns.
"""

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.cards.models import Card, CardValuation
from api.core.problems import not_found
from api.portfolio.schemas import PortfolioCard, PortfolioOut
from api.users.models import User


async def portfolio(session: AsyncSession, user_id: uuid.UUID) -> PortfolioOut:
    if await session.get(User, user_id) is None:
        raise not_found("user")
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
    cards = [PortfolioCard(card_id=card_id, value_cents=int(v)) for card_id, v in rows]
    return PortfolioOut(
        user_id=user_id,
        card_count=len(cards),
        value_cents=sum(c.value_cents for c in cards),
        cards=cards,
    )
