"""``GET /cards/{id}/valuations``: what a card was worth, newest first.

Valuations are appended by sales and auction settlements
(``api.cards.ownership.transfer_card``) and by appraisals; the newest one is the
card's value in portfolios.
"""

import uuid
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.cards.errors import no_such_card
from api.cards.models import Card, CardValuation
from api.core.db import SessionDep
from api.core.pagination import DEFAULT_LIMIT, paginate
from api.core.problems import problem_responses
from api.web.deps import Cursor, Limit

router = APIRouter(prefix="/cards", tags=["cards"])


class ValuationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    value_cents: int
    source: Literal["sale", "auction", "appraisal"]
    at: datetime


class ValuationPage(BaseModel):
    items: list[ValuationOut]
    next_cursor: str | None


async def card_valuations(
    session: AsyncSession, card_id: uuid.UUID, *, limit: int, cursor: str | None
) -> tuple[list[CardValuation], str | None]:
    if await session.get(Card, card_id) is None:
        raise no_such_card()
    stmt = select(CardValuation).where(CardValuation.card_id == card_id)
    rows, next_cursor = await paginate(
        session, stmt, CardValuation.at, CardValuation.id, limit=limit, cursor=cursor
    )
    return list(rows), next_cursor


@router.get(
    "/{card_id}/valuations", response_model=ValuationPage, responses=problem_responses(404, 422)
)
async def list_valuations(
    card_id: uuid.UUID,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict[str, Any]:
    rows, next_cursor = await card_valuations(session, card_id, limit=limit, cursor=cursor)
    return {"items": [ValuationOut.model_validate(r) for r in rows], "next_cursor": next_cursor}
