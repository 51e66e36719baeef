"""``GET /users/{id}/portfolio``: public, like the cards themselves (owner ids and
sale prices are already public through ``/cards`` and ``/cards/{id}/valuations``)."""

import uuid

from fastapi import APIRouter

from api.core.cache import get_redis
from api.core.db import SessionDep
from api.core.problems import problem_responses
from api.portfolio.schemas import PortfolioOut
from api.portfolio.service import portfolio

router = APIRouter(tags=["portfolio"])


@router.get(
    "/users/{user_id}/portfolio",
    response_model=PortfolioOut,
    responses=problem_responses(404, 422),
)
async def get_portfolio(user_id: uuid.UUID, session: SessionDep) -> PortfolioOut:
    return await portfolio(session, user_id, get_redis())
