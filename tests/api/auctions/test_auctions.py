"""Auctions over the API (in-process ASGI, real Postgres/Redis): start, read, bid,
hold and release, anti-sniping, cancel, authorization and bad input."""

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.api_fixtures import FreshAccount
from tests.support.apitest import Account, Db, assert_problem, register_and_login
from tests.support.auctiontest import balances, bid, create_auction, set_ends_in, snapshot
from tests.support.markettest import fund, list_card, new_card


@pytest.fixture(scope="module")
async def seller(client: httpx.AsyncClient) -> Account:
    return await register_and_login(client)


@pytest.fixture(scope="module")
async def bidders(client: httpx.AsyncClient, session_admin: FreshAccount) -> list[Account]:
    admin = await session_admin.current(client)
    accounts = await asyncio.gather(*(register_and_login(client) for _ in range(3)))
    for account in accounts:
        await fund(client, admin, account.id, 1_000_000)
    return list(accounts)


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_start_auction_puts_card_in_auction_and_reads_back(
    client: httpx.AsyncClient, admin: Account, seller: Account, db: Db
) -> None:
    card_id = await new_card(client, admin, seller.id)
    audit_before = db.value("SELECT count(*) FROM audit_events WHERE action = 'auction.create'")
    auction = await create_auction(
        client, seller, card_id, start_price_cents=500, reserve_price_cents=900,
        duration_seconds=3600,
    )
    assert auction["seller_id"] == seller.id and auction["card_id"] == card_id
    assert auction["status"] == "active" and auction["result"] is None
    assert auction["min_increment_cents"] == 100  # the default
    assert auction["current_bid_cents"] is None and auction["current_bidder_id"] is None
    assert auction["bid_count"] == 0
    duration = when(auction["ends_at"]) - when(auction["starts_at"])
    assert duration == timedelta(seconds=3600)
    card = (await client.get(f"/cards/{card_id}")).json()
    assert card["status"] == "in_auction" and card["owner_id"] == seller.id
    assert db.value(
        "SELECT count(*) FROM audit_events WHERE action = 'auction.create'"
    ) == audit_before + 1

    r = await client.get(f"/auctions/{auction['id']}")
    assert r.status_code == 200 and r.json() == auction
    tag = r.headers["etag"]
    again = await client.get(f"/auctions/{auction['id']}", headers={"If-None-Match": tag})
    assert again.status_code == 304

    # a second auction (or a listing) of the same card is refused, nothing written
    before = snapshot(db)
    r = await client.post("/auctions", headers=seller.auth,
                          json={"card_id": card_id, "start_price_cents": 1, "duration_seconds": 60})
    assert_problem(r, 409, "card_unavailable")
    assert snapshot(db) == before


async def test_list_auctions_filters_sorts_and_pages(
    client: httpx.AsyncClient, admin: Account, db: Db
) -> None:
    owner = await register_and_login(client)
    created = []
    for minutes in (30, 10, 20):
        card_id = await new_card(client, admin, owner.id)
        created.append(await create_auction(client, owner, card_id,
                                            duration_seconds=minutes * 60))
    r = await client.get("/auctions", params={"seller_id": owner.id, "sort": "ends_at"})
    assert r.status_code == 200
    ends = [a["ends_at"] for a in r.json()["items"]]
    assert ends == sorted(ends) and len(ends) == 3
    r = await client.get("/auctions", params={"seller_id": owner.id, "sort": "-ends_at",
                                              "limit": 2})
    page = r.json()
    assert [a["ends_at"] for a in page["items"]] == sorted(ends, reverse=True)[:2]
    rest = (await client.get("/auctions", params={"seller_id": owner.id, "sort": "-ends_at",
                                                  "limit": 2, "cursor": page["next_cursor"]}
                             )).json()
    assert [a["ends_at"] for a in rest["items"]] == [min(ends)] and rest["next_cursor"] is None
    by_card = (await client.get("/auctions", params={"card_id": created[1]["card_id"]})).json()
    assert [a["id"] for a in by_card["items"]] == [created[1]["id"]]
    ended = (await client.get("/auctions", params={"seller_id": owner.id, "status": "ended"}))
    assert ended.json()["items"] == []
    for params in ({"sort": "price"}, {"status": "open"}, {"seller_id": "nope"},
                   {"limit": 0}, {"cursor": "garbage"}):
        assert_problem(await client.get("/auctions", params=params), 422, "validation_error")


async def test_bids_hold_the_leader_and_release_the_outbid(
    client: httpx.AsyncClient, admin: Account, seller: Account, bidders: list[Account], db: Db
) -> None:
    alice, bob, _ = bidders
    card_id = await new_card(client, admin, seller.id)
    auction = await create_auction(client, seller, card_id, start_price_cents=1000,
                                   min_increment_cents=250)
    aid = auction["id"]
    a0, b0 = balances(db, alice.id), balances(db, bob.id)

    before = snapshot(db)
    assert_problem(await bid(client, alice, aid, 999), 409, "bid_too_low")
    assert snapshot(db) == before

    r = await bid(client, alice, aid, 1000)
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["bidder_id"] == alice.id and first["amount_cents"] == 1000
    assert balances(db, alice.id) == (a0[0] - 1000, a0[1] + 1000)

    before = snapshot(db)
    body = assert_problem(await bid(client, bob, aid, 1249), 409, "bid_too_low")
    assert body["minimum_cents"] == 1250
    assert snapshot(db) == before

    r = await bid(client, bob, aid, 1250)
    assert r.status_code == 201, r.text
    assert balances(db, alice.id) == a0  # released in full
    assert balances(db, bob.id) == (b0[0] - 1250, b0[1] + 1250)

    # the leader raises their own bid: one hold of the new amount, not two
    r = await bid(client, bob, aid, 2000)
    assert r.status_code == 201, r.text
    assert balances(db, bob.id) == (b0[0] - 2000, b0[1] + 2000)

    state = (await client.get(f"/auctions/{aid}")).json()
    assert state["current_bid_cents"] == 2000 and state["current_bidder_id"] == bob.id
    assert state["bid_count"] == 3
    bids = (await client.get(f"/auctions/{aid}/bids")).json()["items"]
    assert [b["amount_cents"] for b in bids] == [2000, 1250, 1000]  # newest first
    assert {b["auction_id"] for b in bids} == {aid}
    kinds = db.rows(
        "SELECT kind, count(*) FROM ledger_transactions WHERE reference_id = %s GROUP BY kind "
        "ORDER BY kind", aid,
    )
    assert kinds == [("bid_hold", 3), ("bid_release", 2)]
    assert db.value(
        "SELECT count(*) FROM audit_events WHERE action = 'auction.bid' AND entity_id = %s", aid
    ) == 3


async def test_bid_refusals_write_nothing(
    client: httpx.AsyncClient, admin: Account, seller: Account, bidders: list[Account], db: Db
) -> None:
    card_id = await new_card(client, admin, seller.id)
    aid = (await create_auction(client, seller, card_id, start_price_cents=1000))["id"]
    poor = await register_and_login(client)
    await fund(client, admin, poor.id, 999)
    before = snapshot(db)

    assert_problem(await bid(client, seller, aid, 5000), 403, "forbidden")
    assert_problem(await bid(client, poor, aid, 1000), 409, "insufficient_funds")
    for amount in (0, -5, 10**15, 12.5, "1000", True, None):
        r = await client.post(f"/auctions/{aid}/bids", headers=bidders[0].auth,
                              json={"amount_cents": amount})
        assert_problem(r, 422, "validation_error")
    r = await client.post(f"/auctions/{aid}/bids", headers=bidders[0].auth,
                          json={"amount_cents": 1000, "bidder_id": bidders[1].id})
    assert_problem(r, 422, "validation_error")
    assert_problem(await bid(client, bidders[0], str(uuid.uuid4()), 1000), 404, "not_found")
    assert_problem(await bid(client, bidders[0], "not-a-uuid", 1000), 422, "validation_error")
    r = await client.post(f"/auctions/{aid}/bids", json={"amount_cents": 1000})
    assert_problem(r, 401, "unauthorized")
    assert snapshot(db) == before


async def test_bid_after_the_end_is_refused_even_before_the_closer_ran(
    client: httpx.AsyncClient, admin: Account, seller: Account, bidders: list[Account], db: Db
) -> None:
    card_id = await new_card(client, admin, seller.id)
    aid = (await create_auction(client, seller, card_id))["id"]
    set_ends_in(db, aid, -1)
    before = snapshot(db)
    assert_problem(await bid(client, bidders[0], aid, 5000), 409, "auction_not_active")
    assert_problem(await client.post(f"/auctions/{aid}/cancel", headers=seller.auth),
                   409, "auction_not_active")
    assert snapshot(db) == before
    set_ends_in(db, aid, 3600)  # leave it open for the closer-free rest of this module


async def test_anti_sniping_extends_to_sixty_seconds_after_a_late_bid(
    client: httpx.AsyncClient, admin: Account, seller: Account, bidders: list[Account], db: Db
) -> None:
    card_id = await new_card(client, admin, seller.id)
    aid = (await create_auction(client, seller, card_id, duration_seconds=3600))["id"]

    r = await bid(client, bidders[0], aid, 1000)  # an hour left: the end stays put
    assert r.status_code == 201
    state = (await client.get(f"/auctions/{aid}")).json()
    early_end = when(state["ends_at"])
    assert early_end - when(state["starts_at"]) == timedelta(seconds=3600)

    set_ends_in(db, aid, 20)
    r = await bid(client, bidders[1], aid, 1100)
    assert r.status_code == 201, r.text
    placed_at = when(r.json()["created_at"])
    ends_at = when((await client.get(f"/auctions/{aid}")).json()["ends_at"])
    assert ends_at == placed_at + timedelta(seconds=60)
    assert db.value(
        "SELECT details->>'ends_at' FROM audit_events WHERE action = 'auction.bid' "
        "AND entity_id = %s ORDER BY id DESC LIMIT 1", aid,
    ) is not None


async def test_cancel_only_by_the_seller_and_only_without_bids(
    client: httpx.AsyncClient, admin: Account, seller: Account, bidders: list[Account], db: Db
) -> None:
    card_id = await new_card(client, admin, seller.id)
    aid = (await create_auction(client, seller, card_id))["id"]
    before = snapshot(db)
    assert_problem(await client.post(f"/auctions/{aid}/cancel", headers=bidders[0].auth),
                   403, "forbidden")
    assert_problem(await client.post(f"/auctions/{uuid.uuid4()}/cancel", headers=seller.auth),
                   404, "not_found")
    assert snapshot(db) == before

    r = await client.post(f"/auctions/{aid}/cancel", headers=seller.auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled" and r.json()["result"] is None
    assert (await client.get(f"/cards/{card_id}")).json()["status"] == "available"
    before = snapshot(db)
    assert_problem(await bid(client, bidders[0], aid, 5000), 409, "auction_not_active")
    assert_problem(await client.post(f"/auctions/{aid}/cancel", headers=seller.auth),
                   409, "auction_not_active")
    assert snapshot(db) == before

    # with a bid on it, the seller can no longer walk away
    aid2 = (await create_auction(client, seller, card_id))["id"]
    assert (await bid(client, bidders[0], aid2, 1000)).status_code == 201
    before = snapshot(db)
    assert_problem(await client.post(f"/auctions/{aid2}/cancel", headers=seller.auth),
                   409, "conflict")
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "fields",
    [
        {"duration_seconds": 59},
        {"duration_seconds": 30 * 24 * 3600 + 1},
        {"duration_seconds": 0},
        {"duration_seconds": 60.5},
        {"start_price_cents": 0},
        {"start_price_cents": -100},
        {"start_price_cents": 10**15},
        {"start_price_cents": "1000"},
        {"reserve_price_cents": 999},
        {"min_increment_cents": 0},
        {"min_increment_cents": -1},
        {"status": "ended"},
        {"seller_id": str(uuid.uuid4())},
        {"card_id": "not-a-uuid"},
        {"card_id": str(uuid.uuid4())},
    ],
)
async def test_bad_auction_bodies_are_422_and_write_nothing(
    client: httpx.AsyncClient, admin: Account, seller: Account, db: Db, fields: dict[str, Any]
) -> None:
    card_id = await new_card(client, admin, seller.id)
    body = {"card_id": card_id, "start_price_cents": 1000, "duration_seconds": 60, **fields}
    before = snapshot(db)
    assert_problem(await client.post("/auctions", headers=seller.auth, json=body),
                   422, "validation_error")
    assert snapshot(db) == before


async def test_only_the_owner_of_an_available_card_starts_an_auction(
    client: httpx.AsyncClient, admin: Account, seller: Account, bidders: list[Account], db: Db
) -> None:
    card_id = await new_card(client, admin, seller.id)
    body = {"card_id": card_id, "start_price_cents": 1000, "duration_seconds": 60}
    before = snapshot(db)
    assert_problem(await client.post("/auctions", headers=bidders[0].auth, json=body),
                   403, "card_not_owned")
    assert_problem(await client.post("/auctions", json=body), 401, "unauthorized")
    assert snapshot(db) == before
    await list_card(client, seller, card_id, 5000)
    before = snapshot(db)
    assert_problem(await client.post("/auctions", headers=seller.auth, json=body),
                   409, "card_unavailable")
    assert snapshot(db) == before


async def test_unknown_auction_ids(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    assert_problem(await client.get(f"/auctions/{missing}"), 404, "not_found")
    assert_problem(await client.get(f"/auctions/{missing}/bids"), 404, "not_found")
    assert_problem(await client.get("/auctions/123"), 422, "validation_error")


async def test_idempotent_bid_replays_the_first_answer(
    client: httpx.AsyncClient, admin: Account, seller: Account, bidders: list[Account], db: Db
) -> None:
    card_id = await new_card(client, admin, seller.id)
    aid = (await create_auction(client, seller, card_id))["id"]
    headers = {**bidders[2].auth, "Idempotency-Key": f"bid-{uuid.uuid4()}"}
    first = await client.post(f"/auctions/{aid}/bids", headers=headers,
                              json={"amount_cents": 1500})
    assert first.status_code == 201, first.text
    held = balances(db, bidders[2].id)
    again = await client.post(f"/auctions/{aid}/bids", headers=headers,
                              json={"amount_cents": 1500})
    assert again.status_code == 201 and again.json() == first.json()
    assert balances(db, bidders[2].id) == held
    assert db.value("SELECT count(*) FROM bids WHERE auction_id = %s", aid) == 1
    other = await client.post(f"/auctions/{aid}/bids", headers=headers,
                              json={"amount_cents": 1600})
    assert_problem(other, 409, "idempotency_key_reused")
    assert db.value("SELECT count(*) FROM bids WHERE auction_id = %s", aid) == 1
