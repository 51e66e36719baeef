"""Compare the stream-fed hot set with a recomputation from Postgres, as a user sees it.

The recomputation is the API's own database fallback (the same service with Redis
out of reach), so "equal" means what a client reads from ``X-Data-Source: hot``
matches what Postgres says the figures are.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from redis.asyncio import Redis

from api.core.db import get_sessionmaker
from api.marketdata import service
from api.portfolio.service import portfolio

PRICE_FIGURES = ("last_sale_cents", "sales_24h", "volume_24h_cents", "floor_listing_cents")


async def hot(http: httpx.AsyncClient, path: str, ready: Callable[[dict[str, Any]], bool],
              timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
    """Poll ``path`` until the hot set answers and ``ready(body)`` holds."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = await http.get(path)
        assert r.status_code == 200, r.text
        body = r.json()
        if r.headers["x-data-source"] == "hot" and ready(body):
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"{path} not reflected by the hot set within {timeout}s: {body}")


async def postgres_figures(cards: list[str], set_name: str, users: list[str]
                           ) -> dict[str, Any]:
    """Every figure the hot set serves for these cards, set and users, from Postgres."""
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2,
                          socket_connect_timeout=0.2)
    try:
        async with get_sessionmaker()() as session:
            prices = {}
            for card_id in cards:
                price, source = await service.card_price(session, dead, uuid.UUID(card_id))
                assert source == "database"
                prices[card_id] = {f: price.model_dump(mode="json")[f] for f in PRICE_FIGURES}
            stats, _ = await service.market_stats(session, dead, set_name, None)
            traders, _ = await service.leaderboard(session, dead, "traders", 100)
            portfolios = {u: (await portfolio(session, uuid.UUID(u), None)).model_dump(mode="json")
                          for u in users}
    finally:
        await dead.aclose()
    scores = {str(e.user_id): e.score for e in traders.entries}
    return {"prices": prices, "stats": stats.model_dump(mode="json"),
            "traders": {u: scores.get(u) for u in users}, "portfolios": portfolios}


async def hot_figures(http: httpx.AsyncClient, cards: list[str], set_name: str,
                      users: list[str]) -> dict[str, Any]:
    """The same figures as :func:`postgres_figures`, read over REST from the hot set."""
    async def from_hot(path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        r = await http.get(path, params=params)
        assert r.status_code == 200, r.text
        assert r.headers["x-data-source"] == "hot", f"{path} answered from Postgres"
        return dict(r.json())

    prices = {}
    for card_id in cards:
        body = await from_hot(f"/cards/{card_id}/price")
        prices[card_id] = {f: body[f] for f in PRICE_FIGURES}
    stats = await from_hot("/market/stats", {"set_name": set_name})
    board = await from_hot("/leaderboards/traders", {"limit": 100})
    scores = {e["user_id"]: e["score"] for e in board["entries"]}
    portfolios = {u: (await http.get(f"/users/{u}/portfolio")).json() for u in users}
    return {"prices": prices, "stats": stats,
            "traders": {u: scores.get(u) for u in users}, "portfolios": portfolios}


async def converge(http: httpx.AsyncClient, cards: list[str], set_name: str,
                   users: list[str], timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
    """Wait until the hot figures equal Postgres's; on timeout, fail showing the diff."""
    deadline = time.monotonic() + timeout
    expected = await postgres_figures(cards, set_name, users)
    while True:
        got = await hot_figures(http, cards, set_name, users)
        if got == expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    differing = {k: (got[k], expected[k]) for k in expected if got[k] != expected[k]}
    assert not differing, f"hot set differs from Postgres: {differing}"
    return got


# The contract: after a commit the hot set reflects it within 5 s; the rest is slack for
# a loaded CI machine (the suite runs the whole platform on 2 cores).
HOT_SET_LAG_S = 15.0


async def answer(http: httpx.AsyncClient, path: str, params: dict[str, Any] | None,
                 shows: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """``path``'s body as a client sees it right after its own write.

    From PostgreSQL (``x-data-source: database``) the figures hold at once, so the
    first answer is returned whatever it says and the caller's asserts judge it. From
    a ready hot set they may lag the write by the pipeline's latency: the body is
    returned once ``shows(body)`` holds, or the last one after :data:`HOT_SET_LAG_S`.
    Which source answers depends on whether a stream job runs in this session (a test
    module run after an e2e one finds it running), not on the test.
    """
    deadline = time.monotonic() + HOT_SET_LAG_S
    while True:
        r = await http.get(path, params=params)
        assert r.status_code == 200, r.text
        body = dict(r.json())
        if (r.headers["x-data-source"] == "database" or shows(body)
                or time.monotonic() > deadline):
            return body
        await asyncio.sleep(0.2)
