"""Card prices, market stats and leaderboards over REST, from Postgres when the hot set
cannot answer: figures right after a sale, edge-cache headers, 304s, and bad input.

The hot-set path (the stream writing Redis) is tested end to end in
tests/e2e/test_market_data.py. Here the hot set is usually not ready (no stream job runs
yet in the session), so every figure must equal what the rows say at once; when a job
runs (this module after an e2e one), the figures must show within the contract's lag
(:func:`tests.support.marketcheck.answer`)."""

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from api.core.db import get_sessionmaker
from api.marketdata import service
from tests.support.apitest import Account, Db, assert_problem, create_card, register_and_login
from tests.support.marketcheck import answer
from tests.support.markettest import fund, list_card


async def _card(client: httpx.AsyncClient, admin: Account, owner: Account, set_name: str,
                rarity: str = "rare") -> str:
    card = await create_card(client, admin, name="Mox Pearl", set_name=set_name,
                             number=uuid.uuid4().hex[:6], rarity=rarity, owner_id=owner.id)
    return str(card["id"])


@pytest.fixture
async def market(client: httpx.AsyncClient, admin: Account) -> dict[str, Any]:
    """One set of its own: two cards listed, one of them sold, one auction running."""
    set_name = f"Set {uuid.uuid4().hex[:8]}"
    seller, buyer = await register_and_login(client), await register_and_login(client)
    await fund(client, admin, buyer.id, 100_000)
    sold, kept, auctioned = [await _card(client, admin, seller, set_name) for _ in range(3)]
    cheap = await list_card(client, seller, sold, 1_200)
    await list_card(client, seller, kept, 2_500)
    r = await client.post(f"/listings/{cheap['id']}/purchase", headers=buyer.auth)
    assert r.status_code == 201, r.text
    r = await client.post("/auctions", headers=seller.auth, json={
        "card_id": auctioned, "start_price_cents": 500, "duration_seconds": 3600})
    assert r.status_code == 201, r.text
    return {"set_name": set_name, "seller": seller, "buyer": buyer, "sold": sold,
            "kept": kept}


async def test_card_price_after_a_sale(client: httpx.AsyncClient, market: dict[str, Any],
                                       db: Db) -> None:
    body = await answer(client, f"/cards/{market['sold']}/price", None,
                        lambda b: b["sales_24h"] == 1 and b["floor_listing_cents"] is None)
    assert body["card_id"] == market["sold"]
    assert (body["last_sale_cents"], body["sales_24h"], body["volume_24h_cents"]) == \
        (1_200, 1, 1_200)
    assert body["floor_listing_cents"] is None  # its only listing sold
    sold_at = db.value("SELECT created_at FROM sales WHERE card_id = %s", market["sold"])
    # The hot set dates a sale by its commit, PostgreSQL's row by its transaction's
    # start: the same moment up to the purchase's duration (a second boundary between
    # the two failed a string comparison on a loaded machine).
    answered = datetime.fromisoformat(body["last_sale_at"].replace("Z", "+00:00"))
    assert abs((answered - sold_at).total_seconds()) < 5, (body["last_sale_at"], sold_at)
    kept = await answer(client, f"/cards/{market['kept']}/price", None,
                        lambda b: b["floor_listing_cents"] == 2_500)
    assert (kept["last_sale_cents"], kept["sales_24h"], kept["floor_listing_cents"]) == \
        (None, 0, 2_500)


async def test_market_stats_by_set_and_rarity(client: httpx.AsyncClient,
                                              market: dict[str, Any]) -> None:
    whole_set = {"sales_24h": 1, "volume_24h_cents": 1_200, "active_listings": 1,
                 "active_auctions": 1, "floor_listing_cents": 2_500}
    params = {"set_name": market["set_name"]}
    assert await answer(client, "/market/stats", params, whole_set.__eq__) == whole_set
    # Checked after the whole set's figures show: the set's cards are rare, so its
    # common figures are zero, settled or not.
    assert await answer(client, "/market/stats", {**params, "rarity": "common"},
                        lambda b: True) == {"sales_24h": 0, "volume_24h_cents": 0,
                                            "active_listings": 0, "active_auctions": 0,
                                            "floor_listing_cents": None}


async def test_public_aggregates_are_edge_cacheable_with_etags(
        client: httpx.AsyncClient, market: dict[str, Any]) -> None:
    for path in (f"/cards/{market['sold']}/price", "/market/stats", "/leaderboards/traders"):
        r = await client.get(path)
        assert r.status_code == 200, (path, r.text)
        assert r.headers["cache-control"] == "public, max-age=5, stale-while-revalidate=30"
        assert r.headers["x-data-source"] in {"hot", "database"}
        tag = r.headers["etag"]
        again = await client.get(path, headers={"If-None-Match": tag})
        if again.status_code == 200:  # the figures moved in between (another test's sale)
            assert again.headers["etag"] != tag
        else:
            assert again.status_code == 304 and again.headers["etag"] == tag


async def test_traders_leaderboard_ranks_24h_volume(client: httpx.AsyncClient,
                                                    market: dict[str, Any], db: Db) -> None:
    r = await client.get("/leaderboards/traders", params={"limit": 100})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "traders" and body["updated_at"]
    scores = [e["score"] for e in body["entries"]]
    assert scores == sorted(scores, reverse=True)
    assert [e["rank"] for e in body["entries"]] == list(range(1, len(scores) + 1))
    expected = db.value(
        "SELECT sum(price_cents) FROM sales WHERE created_at > now() - interval '24 hours' "
        "AND (buyer_id = %s OR seller_id = %s)", market["buyer"].id, market["buyer"].id)
    mine = [e for e in body["entries"] if e["user_id"] == market["buyer"].id]
    if mine:  # in the top 100 of this session's traders
        assert mine[0]["score"] == expected and mine[0]["username"] == market["buyer"].username


async def test_unreachable_redis_answers_from_postgres(market: dict[str, Any]) -> None:
    """Redis down: the figures still come, correct, from the rows (never a stale guess)."""
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2,
                          socket_connect_timeout=0.2)
    async with get_sessionmaker()() as session:
        price, source = await service.card_price(session, dead, uuid.UUID(market["sold"]))
        stats, stats_source = await service.market_stats(session, dead, market["set_name"],
                                                         None)
        board, board_source = await service.leaderboard(session, dead, "traders", 10)
    await dead.aclose()
    assert (source, stats_source, board_source) == ("database",) * 3
    assert (price.last_sale_cents, price.sales_24h) == (1_200, 1)
    assert (stats.sales_24h, stats.active_listings, stats.active_auctions) == (1, 1, 1)
    assert board.entries and board.entries[0].score >= 1_200


async def test_bad_input_is_a_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"/cards/{uuid.uuid4()}/price"), 404, "not_found")
    assert_problem(await client.get("/cards/not-a-uuid/price"), 422, "validation_error")
    assert_problem(await client.get("/leaderboards/whales"), 404, "not_found")
    for limit in (0, 101, "x"):
        assert_problem(await client.get("/leaderboards/traders", params={"limit": limit}),
                       422, "validation_error")
    assert_problem(await client.get("/market/stats", params={"rarity": "mythic"}),
                   422, "validation_error")


async def test_private_answers_are_never_kept_by_shared_caches(
        client: httpx.AsyncClient, market: dict[str, Any]) -> None:
    """Somebody's own data says ``private, no-store``; a card keeps ``no-cache`` + ETag."""
    buyer = market["buyer"]
    for path in ("/me/balance", "/notifications", "/me/watchlist"):
        r = await client.get(path, headers=buyer.auth)
        assert r.status_code == 200, (path, r.text)
        assert r.headers["cache-control"] == "private, no-store", path
    card = await client.get(f"/cards/{market['sold']}", headers=buyer.auth)
    assert card.headers["cache-control"] == "no-cache" and card.headers["etag"]
