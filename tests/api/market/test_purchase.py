"""Purchases: money with the exact fee, the card with its trail, refusals that change
nothing, idempotent retries, and races fired over real HTTP at uvicorn."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis

from ece.contracts.card_cache import document_key
from ece.settings import Settings
from tests.support.apitest import Account, Db, assert_problem, register_and_login
from tests.support.markettest import balance, fund, list_card, new_card, snapshot


def platform_fees(db: Db) -> int:
    return int(
        db.value(
            "SELECT balance_cents FROM ledger_accounts "
            "WHERE kind = 'platform_fees' AND user_id IS NULL"
        )
    )


@pytest.fixture(scope="module")
async def http(platform: Any, api_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the real uvicorn server (separate process, its own DB pool)."""
    platform.require("api")
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=platform.part("api").url, timeout=30, limits=limits) as c:
        yield c


async def test_purchase_moves_money_and_card(
    client: httpx.AsyncClient, admin: Account, db: Db, api_settings: Settings
) -> None:
    seller = await register_and_login(client)
    buyer = await register_and_login(client)
    card_id = await new_card(client, admin, seller.id)
    await fund(client, admin, buyer.id, 5_000)
    listing = await list_card(client, seller, card_id, 1_999)
    fees_before = platform_fees(db)

    r = await client.post(f"/listings/{listing['id']}/purchase", headers=buyer.auth)
    assert r.status_code == 201, r.text
    sale = r.json()
    fee = 1_999 * api_settings.fee_bps // 10_000
    assert fee == 49  # 250 bps of 19.99 is 49.975 -> floor
    assert sale["fee_cents"] == fee
    assert sale["price_cents"] == 1_999
    assert (sale["buyer_id"], sale["seller_id"]) == (buyer.id, seller.id)
    assert (sale["listing_id"], sale["card_id"]) == (listing["id"], card_id)

    assert await balance(client, buyer) == (5_000 - 1_999, 0)
    assert await balance(client, seller) == (1_999 - fee, 0)
    assert platform_fees(db) == fees_before + fee
    # one balanced ledger transaction of kind sale, referencing the sale
    legs = db.rows(
        "SELECT e.amount_cents FROM ledger_entries e JOIN ledger_transactions t "
        "ON t.id = e.transaction_id WHERE t.kind = 'sale' AND t.reference_id = %s "
        "ORDER BY e.amount_cents",
        uuid.UUID(sale["id"]),
    )
    assert [a for (a,) in legs] == [-1_999, fee, 1_999 - fee]
    r = await client.get("/me/ledger", headers=seller.auth)
    assert r.json()["items"][0] | {"id": None, "created_at": None, "transaction_id": None} == {
        "id": None,
        "amount_cents": 1_999 - fee,
        "kind": "sale",
        "reference_id": sale["id"],
        "created_at": None,
        "account": "available",
        "transaction_id": None,
    }

    # the card: new owner (through the cache, and in the cache itself), history, valuation
    # (the cache was written by the purchase itself, before anyone read the card)
    cached = redis.Redis.from_url(api_settings.redis_url).get(document_key(card_id))
    assert isinstance(cached, bytes) and buyer.id in cached.decode()
    r = await client.get(f"/cards/{card_id}")
    assert (r.json()["owner_id"], r.json()["status"]) == (buyer.id, "available")
    history = (await client.get(f"/cards/{card_id}/history")).json()["items"]
    assert [(h["reason"], h["from_user_id"], h["to_user_id"]) for h in history] == [
        ("issue", None, seller.id),
        ("sale", seller.id, buyer.id),
    ]
    assert history[1]["reference_id"] == sale["id"]
    valuations = (await client.get(f"/cards/{card_id}/valuations")).json()["items"]
    assert [(v["value_cents"], v["source"]) for v in valuations] == [(1_999, "sale")]
    assert (await client.get(f"/listings/{listing['id']}")).json()["status"] == "sold"
    assert db.value("SELECT count(*) FROM sales WHERE listing_id = %s", listing["id"]) == 1
    assert (
        db.value(
            "SELECT count(*) FROM audit_events "
            "WHERE action = 'listing.purchase' AND entity_id = %s",
            sale["id"],
        )
        == 1
    )

    # portfolios follow the latest valuation; unvalued cards count 0
    spare = await new_card(client, admin, buyer.id)
    r = await client.get(f"/users/{buyer.id}/portfolio")
    assert r.status_code == 200
    body = r.json()
    assert (body["user_id"], body["card_count"], body["value_cents"]) == (buyer.id, 2, 1_999)
    assert body["cards"] == [
        {"card_id": card_id, "value_cents": 1_999},
        {"card_id": spare, "value_cents": 0},
    ]
    seller_portfolio = (await client.get(f"/users/{seller.id}/portfolio")).json()
    assert (seller_portfolio["card_count"], seller_portfolio["value_cents"]) == (0, 0)

    # the buyer can now resell; the new sale becomes the latest valuation
    third = await register_and_login(client)
    await fund(client, admin, third.id, 3_000)
    relisting = await list_card(client, buyer, card_id, 2_500)
    r = await client.post(f"/listings/{relisting['id']}/purchase", headers=third.auth)
    assert r.status_code == 201
    valuations = (await client.get(f"/cards/{card_id}/valuations")).json()["items"]
    assert [v["value_cents"] for v in valuations] == [2_500, 1_999]  # newest first
    assert (await client.get(f"/users/{third.id}/portfolio")).json()["value_cents"] == 2_500


async def test_refused_purchases_change_nothing(
    client: httpx.AsyncClient, admin: Account, db: Db
) -> None:
    seller = await register_and_login(client)
    poor = await register_and_login(client)
    card_id = await new_card(client, admin, seller.id)
    await fund(client, admin, poor.id, 999)
    listing = await list_card(client, seller, card_id, 1_000)
    await fund(client, admin, seller.id, 5_000)

    before = snapshot(db)
    url = f"/listings/{listing['id']}/purchase"
    assert_problem(await client.post(url, headers=seller.auth), 403, "forbidden")  # own listing
    assert_problem(await client.post(url, headers=poor.auth), 409, "insufficient_funds")
    assert_problem(await client.post(url), 401, "unauthorized")
    r = await client.post(url, headers={**poor.auth, "Idempotency-Key": "poor-1"})
    assert_problem(r, 409, "insufficient_funds")
    assert snapshot(db) == before  # no key stored for a failed request either
    assert await balance(client, poor) == (999, 0)

    # after a top-up the same key executes (nothing was stored for the failure)
    await fund(client, admin, poor.id, 1)
    r = await client.post(url, headers={**poor.auth, "Idempotency-Key": "poor-1"})
    assert r.status_code == 201
    assert await balance(client, poor) == (0, 0)

    # sold: the listing is no longer active, for anyone, and cannot be cancelled
    rich = await register_and_login(client)
    await fund(client, admin, rich.id, 10_000)
    before = snapshot(db)
    assert_problem(await client.post(url, headers=rich.auth), 409, "listing_not_active")
    r = await client.delete(f"/listings/{listing['id']}", headers=seller.auth)
    assert_problem(r, 409, "listing_not_active")
    assert snapshot(db) == before

    # a cancelled listing cannot be bought
    card2 = await new_card(client, admin, seller.id)
    cancelled = await list_card(client, seller, card2, 10)
    await client.delete(f"/listings/{cancelled['id']}", headers=seller.auth)
    before = snapshot(db)
    r = await client.post(f"/listings/{cancelled['id']}/purchase", headers=rich.auth)
    assert_problem(r, 409, "listing_not_active")
    assert snapshot(db) == before


async def test_purchase_idempotency(client: httpx.AsyncClient, admin: Account, db: Db) -> None:
    seller = await register_and_login(client)
    buyer = await register_and_login(client)
    await fund(client, admin, buyer.id, 10_000)
    first_card = await new_card(client, admin, seller.id)
    second_card = await new_card(client, admin, seller.id)
    one = await list_card(client, seller, first_card, 1_000)
    two = await list_card(client, seller, second_card, 1_000)
    key = {**buyer.auth, "Idempotency-Key": "buy-" + uuid.uuid4().hex}

    first = await client.post(f"/listings/{one['id']}/purchase", headers=key)
    assert first.status_code == 201
    replay = await client.post(f"/listings/{one['id']}/purchase", headers=key)
    assert replay.status_code == 201
    assert replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert await balance(client, buyer) == (9_000, 0)

    # the same key on another listing is another request
    before = snapshot(db)
    r = await client.post(f"/listings/{two['id']}/purchase", headers=key)
    assert_problem(r, 409, "idempotency_key_reused")
    assert snapshot(db) == before
    # keys are per user: the seller's identical key string is independent
    other = await register_and_login(client)
    await fund(client, admin, other.id, 1_000)
    r = await client.post(
        f"/listings/{two['id']}/purchase",
        headers={**other.auth, "Idempotency-Key": key["Idempotency-Key"]},
    )
    assert r.status_code == 201


async def test_expired_key_is_a_new_request(
    client: httpx.AsyncClient, admin: Account, db: Db
) -> None:
    """After 24 h a key no longer replays; the cleanup query removes expired keys."""
    from api.core.db import get_sessionmaker
    from api.web.idempotency import purge_expired

    target = await register_and_login(client)
    key = {**admin.auth, "Idempotency-Key": "exp-" + uuid.uuid4().hex}
    body = {"user_id": target.id, "amount_cents": 10, "reference": "r-" + uuid.uuid4().hex}
    assert (await client.post("/admin/deposits", headers=key, json=body)).status_code == 201
    with db_conn(db) as conn:
        conn.execute(
            "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = %s",
            (key["Idempotency-Key"],),
        )
    # Another body (deposit references are unique, so it names its own)
    again = {**body, "amount_cents": 20, "reference": "r-" + uuid.uuid4().hex}
    r = await client.post("/admin/deposits", headers=key, json=again)
    assert r.status_code == 201  # a new request, not idempotency_key_reused
    assert await balance(client, target) == (30, 0)
    with db_conn(db) as conn:
        conn.execute(
            "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = %s",
            (key["Idempotency-Key"],),
        )
    async with get_sessionmaker()() as session:
        assert await purge_expired(session) >= 1
        await session.commit()
    assert (
        db.value("SELECT count(*) FROM idempotency_keys WHERE key = %s", key["Idempotency-Key"])
        == 0
    )


def db_conn(db: Db) -> Any:
    import psycopg

    return psycopg.connect(db.url, autocommit=True)


# --- races over real HTTP ------------------------------------------------------------


async def test_buyers_racing_for_one_listing(
    client: httpx.AsyncClient, http: httpx.AsyncClient, admin: Account, db: Db
) -> None:
    seller = await register_and_login(client)
    card_id = await new_card(client, admin, seller.id)
    price = 4_000
    buyers = [await register_and_login(client) for _ in range(8)]
    for b in buyers:
        await fund(client, admin, b.id, price)
    listing = await list_card(client, seller, card_id, price)
    fees_before = platform_fees(db)

    answers = await asyncio.gather(
        *(http.post(f"/listings/{listing['id']}/purchase", headers=b.auth) for b in buyers)
    )
    statuses = [a.status_code for a in answers]
    assert statuses.count(201) == 1, [a.text for a in answers]
    for a in answers:
        if a.status_code != 201:
            assert_problem(a, 409, "listing_not_active")
    winner = buyers[statuses.index(201)]
    for b in buyers:
        expected = (0, 0) if b is winner else (price, 0)
        assert await balance(client, b) == expected
    fee = answers[statuses.index(201)].json()["fee_cents"]
    assert await balance(client, seller) == (price - fee, 0)
    assert platform_fees(db) == fees_before + fee
    assert db.value("SELECT count(*) FROM sales WHERE listing_id = %s", listing["id"]) == 1
    assert db.value("SELECT owner_id::text FROM cards WHERE id = %s", card_id) == winner.id
    assert (
        db.value(
            "SELECT count(*) FROM card_history WHERE card_id = %s AND reason = 'sale'", card_id
        )
        == 1
    )


async def test_purchase_racing_cancel(
    client: httpx.AsyncClient, http: httpx.AsyncClient, admin: Account, db: Db
) -> None:
    """One of them wins; whichever it is, card, listing and money agree."""
    for _ in range(3):
        seller = await register_and_login(client)
        buyer = await register_and_login(client)
        card_id = await new_card(client, admin, seller.id)
        await fund(client, admin, buyer.id, 100)
        listing = await list_card(client, seller, card_id, 100)
        buy, cancel = await asyncio.gather(
            http.post(f"/listings/{listing['id']}/purchase", headers=buyer.auth),
            http.delete(f"/listings/{listing['id']}", headers=seller.auth),
        )
        sql = "SELECT owner_id::text, status FROM cards WHERE id = %s"
        owner, status = db.rows(sql, card_id)[0]
        if buy.status_code == 201:
            assert_problem(cancel, 409, "listing_not_active")
            assert (owner, status) == (buyer.id, "available")
            assert await balance(client, buyer) == (0, 0)
        else:
            assert cancel.status_code == 204
            assert_problem(buy, 409, "listing_not_active")
            assert (owner, status) == (seller.id, "available")
            assert await balance(client, buyer) == (100, 0)


async def test_crossing_purchases_do_not_deadlock(
    client: httpx.AsyncClient, http: httpx.AsyncClient, admin: Account, db: Db
) -> None:
    """Four traders buy each other's listings at once: accounts are locked in id order,
    so every purchase succeeds (a deadlock would surface as a 409/500)."""
    traders = [await register_and_login(client) for _ in range(4)]
    listings: dict[str, list[str]] = {}
    for t in traders:
        await fund(client, admin, t.id, 10_000)
        listings[t.id] = [
            (await list_card(client, t, await new_card(client, admin, t.id), 100 + i))["id"]
            for i in range(3)
        ]
    # every trader buys one listing of each other trader: A buys from B while B buys from A
    jobs = []
    for seller in traders:
        others = [t for t in traders if t is not seller]
        jobs += list(zip(others, listings[seller.id], strict=True))
    answers = await asyncio.gather(
        *(http.post(f"/listings/{lid}/purchase", headers=b.auth) for b, lid in jobs)
    )
    assert [a.status_code for a in answers] == [201] * len(jobs), [a.text for a in answers]
    held_by_traders = 0
    for t in traders:
        held_by_traders += sum(await balance(client, t))
    fees = sum(a.json()["fee_cents"] for a in answers)
    assert held_by_traders + fees == 4 * 10_000
    owners = db.rows(
        "SELECT c.owner_id::text, s.buyer_id::text FROM sales s JOIN cards c ON c.id = s.card_id "
        "WHERE s.id = ANY(%s)",
        [uuid.UUID(a.json()["id"]) for a in answers],
    )
    assert len(owners) == len(jobs) and all(o == b for o, b in owners)


async def test_concurrent_purchases_with_one_key(
    client: httpx.AsyncClient, http: httpx.AsyncClient, admin: Account, db: Db
) -> None:
    """A double-clicked purchase with one key executes once; the others wait for the
    first and replay its answer."""
    seller = await register_and_login(client)
    buyer = await register_and_login(client)
    await fund(client, admin, buyer.id, 1_000)
    card_id = await new_card(client, admin, seller.id)
    listing = await list_card(client, seller, card_id, 600)
    headers = {**buyer.auth, "Idempotency-Key": "click-" + uuid.uuid4().hex}
    answers = await asyncio.gather(
        *(http.post(f"/listings/{listing['id']}/purchase", headers=headers) for _ in range(5))
    )
    assert [a.status_code for a in answers] == [201] * 5, [a.text for a in answers]
    assert len({json.dumps(a.json(), sort_keys=True) for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 4
    assert await balance(client, buyer) == (400, 0)
    assert db.value("SELECT count(*) FROM sales WHERE listing_id = %s", listing["id"]) == 1
