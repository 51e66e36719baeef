"""``/cards/{id}/price``, ``/market/stats``, ``/leaderboards/{kind}``: public aggregates.

They are the same for every caller and change at most every few seconds, so they
are cacheable at the edge: ``Cache-Control: public, max-age=5,
stale-while-revalidate=30`` beside a body-digest ETag (304 on ``If-None-Match``).
``X-Data-Source`` says whether the hot set or Postgres answered.
"""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.asyncio import Redis

from api.cards.schemas import Rarity
from api.core import etag
from api.core.cache import get_redis
from api.core.db import SessionDep
from api.core.problems import not_found, problem_responses
from api.marketdata import service
from api.marketdata.schemas import CardPriceOut, LeaderboardOut, MarketStatsOut
from ece.contracts.market_data import LEADERBOARD_KINDS

router = APIRouter(tags=["market data"])

EDGE_CACHE = "public, max-age=5, stale-while-revalidate=30"
MAX_LEADERBOARD = 100

RedisDep = Annotated[Redis, Depends(get_redis)]
IfNoneMatch = Annotated[str | None, Header()]


def _edge_cached(body: BaseModel, source: str, resource_id: str,
                 if_none_match: str | None) -> Response:
    response = JSONResponse(jsonable_encoder(body))
    revision = etag.body_revision(bytes(response.body))
    return etag.conditional(response, etag.tag(resource_id, revision), if_none_match,
                            headers={"Cache-Control": EDGE_CACHE, "X-Data-Source": source})


@router.get("/cards/{card_id}/price", response_model=CardPriceOut,
            responses=problem_responses(404, 422))
async def card_price(card_id: uuid.UUID, session: SessionDep, redis: RedisDep,
                     if_none_match: IfNoneMatch = None) -> Response:
    body, source = await service.card_price(session, redis, card_id)
    return _edge_cached(body, source, f"price-{card_id}", if_none_match)


@router.get("/market/stats", response_model=MarketStatsOut, responses=problem_responses(422))
async def market_stats(session: SessionDep, redis: RedisDep,
                       set_name: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
                       rarity: Rarity | None = None,
                       if_none_match: IfNoneMatch = None) -> Response:
    body, source = await service.market_stats(session, redis, set_name,
                                              rarity)
    return _edge_cached(body, source, "market-stats", if_none_match)


@router.get("/leaderboards/{kind}", response_model=LeaderboardOut,
            responses=problem_responses(404, 422))
async def leaderboard(kind: Annotated[str, Path(max_length=40)], session: SessionDep,
                      redis: RedisDep,
                      limit: Annotated[int, Query(ge=1, le=MAX_LEADERBOARD)] = 10,
                      if_none_match: IfNoneMatch = None) -> Response:
    if kind not in LEADERBOARD_KINDS:
        raise not_found("leaderboard")
    body, source = await service.leaderboard(session, redis, kind, limit)
    return _edge_cached(body, source, f"leaderboard-{kind}", if_none_match)
