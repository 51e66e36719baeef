"""Locked cards (``attributes.locked``, security issue #12 item 9, ``api/cards/policy.py``):
no listing, auction, trade offer, accept, purchase or bid while an admin holds the lock;
refusals write nothing; unlocking makes the card movable again; only admins lock."""

import asyncio
from typing import Any

import httpx
import pytest

from ece.settings import Settings
from tests.support.api_fixtures import FreshAccount
from tests.support.apitest import Account, Db, assert_problem, register_and_login
from tests.support.auctiontest import (
    assert_books_balance,
    bid,
    create_auction,
    running_workers,
    set_ends_in,
    snapshot,
    wait_for,
)
from tests.support.markettest import fund, list_card, new_card


@pytest.fixture(scope="module")
async def pair(client: httpx.AsyncClient, session_admin: FreshAccount) -> list[Account]:
    """An owner and a counterparty with money."""
    admin = await session_admin.current(client)
    owner, other = await asyncio.gather(*(register_and_login(client) for _ in range(2)))
    await fund(client, admin, other.id, 1_000_000)
    return [owner, other]


async def set_attributes(
    client: httpx.AsyncClient, who: Account, card_id: str, attributes: dict[str, Any]
) -> httpx.Response:
    return await client.patch(f"/cards/{card_id}", headers=who.auth,
                              json={"attributes": attributes})


async def lock(client: httpx.AsyncClient, admin: Account, card_id: str) -> None:
    r = await set_attributes(client, admin, card_id, {"locked": True, "reason": "dispute"})
    assert r.status_code == 200, r.text
    assert r.json()["attributes"]["locked"] is True


def assert_locked_refusal(r: httpx.Response) -> None:
    body = assert_problem(r, 409, "card_unavailable")
    assert "locked" in body["detail"], body


async def test_locked_card_cannot_be_listed_or_auctioned_until_unlocked(
    client: httpx.AsyncClient, admin: Account, pair: list[Account], db: Db
) -> None:
    owner, _ = pair
    card_id = await new_card(client, admin, owner.id)
    await lock(client, admin, card_id)

    before = snapshot(db)
    r = await client.post("/listings", headers=owner.auth,
                          json={"card_id": card_id, "price_cents": 1_000})
    assert_locked_refusal(r)
    r = await client.post("/auctions", headers=owner.auth,
                          json={"card_id": card_id, "start_price_cents": 1_000,
                                "duration_seconds": 60})
    assert_locked_refusal(r)
    assert snapshot(db) == before

    # unlocking: locked false, then removed altogether
    r = await set_attributes(client, admin, card_id, {"locked": False, "reason": "dispute"})
    assert r.status_code == 200, r.text
    listing = await list_card(client, owner, card_id, 1_000)
    assert listing["status"] == "active"
    r = await client.delete(f"/listings/{listing['id']}", headers=owner.auth)
    assert r.status_code == 204
    await lock(client, admin, card_id)
    r = await set_attributes(client, admin, card_id, {})
    assert r.status_code == 200, r.text
    auction = await create_auction(client, owner, card_id)
    assert auction["status"] == "active"
    r = await client.post(f"/auctions/{auction['id']}/cancel", headers=owner.auth)
    assert r.status_code == 200, r.text


async def test_locked_card_cannot_be_offered_or_requested(
    client: httpx.AsyncClient, admin: Account, pair: list[Account], db: Db
) -> None:
    owner, other = pair
    locked = await new_card(client, admin, owner.id)
    theirs = await new_card(client, admin, other.id)
    await lock(client, admin, locked)

    before = snapshot(db)
    r = await client.post("/trade-offers", headers=owner.auth,
                          json={"to_user_id": other.id, "offered_card_ids": [locked],
                                "requested_card_ids": [theirs]})
    assert_locked_refusal(r)
    r = await client.post("/trade-offers", headers=other.auth,
                          json={"to_user_id": owner.id, "offered_card_ids": [theirs],
                                "requested_card_ids": [locked]})
    assert_locked_refusal(r)
    assert snapshot(db) == before


async def test_pending_offer_with_a_card_locked_since_cannot_be_accepted(
    client: httpx.AsyncClient, admin: Account, pair: list[Account], db: Db
) -> None:
    owner, other = pair
    mine = await new_card(client, admin, owner.id)
    theirs = await new_card(client, admin, other.id)
    r = await client.post("/trade-offers", headers=owner.auth,
                          json={"to_user_id": other.id, "offered_card_ids": [mine],
                                "requested_card_ids": [theirs]})
    assert r.status_code == 201, r.text
    offer_id = r.json()["id"]
    await lock(client, admin, theirs)  # the requested card, locked after the offer

    before = snapshot(db)
    r = await client.post(f"/trade-offers/{offer_id}/accept", headers=other.auth)
    assert_locked_refusal(r)
    assert snapshot(db) == before
    r = await client.get(f"/trade-offers/{offer_id}", headers=other.auth)
    assert r.json()["status"] == "pending"

    # unlocked again, the same offer goes through
    assert (await set_attributes(client, admin, theirs, {})).status_code == 200
    r = await client.post(f"/trade-offers/{offer_id}/accept", headers=other.auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted"


async def test_card_locked_after_listing_cannot_be_bought(
    client: httpx.AsyncClient, admin: Account, pair: list[Account], db: Db
) -> None:
    owner, buyer = pair
    card_id = await new_card(client, admin, owner.id)
    listing = await list_card(client, owner, card_id, 2_000)
    await lock(client, admin, card_id)

    before = snapshot(db)
    r = await client.post(f"/listings/{listing['id']}/purchase", headers=buyer.auth)
    assert_locked_refusal(r)
    assert snapshot(db) == before
    # the seller may still withdraw the listing
    r = await client.delete(f"/listings/{listing['id']}", headers=owner.auth)
    assert r.status_code == 204


async def test_card_locked_during_auction_takes_no_bids_and_ends_without_sale(
    client: httpx.AsyncClient, admin: Account, pair: list[Account], db: Db, settings: Settings
) -> None:
    owner, bidder = pair
    card_id = await new_card(client, admin, owner.id)
    auction = (await create_auction(client, owner, card_id))["id"]
    assert (await bid(client, bidder, auction, 1_000)).status_code == 201
    await lock(client, admin, card_id)

    before = snapshot(db)
    assert_locked_refusal(await bid(client, bidder, auction, 5_000))
    assert snapshot(db) == before

    set_ends_in(db, auction, 0.2)
    with running_workers(settings):
        wait_for(lambda: db.value("SELECT status FROM auctions WHERE id = %s", auction)
                 == "ended", 15, "the auction to end")
    assert db.value("SELECT result FROM auctions WHERE id = %s", auction) == "no_sale"
    owner_id, status = db.rows("SELECT owner_id, status FROM cards WHERE id = %s", card_id)[0]
    assert (str(owner_id), status) == (owner.id, "available")
    assert db.value("SELECT count(*) FROM card_history WHERE reference_id = %s", auction) == 0
    assert_books_balance(db)  # the leading bid's hold was released


async def test_only_admins_set_attributes(
    client: httpx.AsyncClient, admin: Account, pair: list[Account], db: Db
) -> None:
    owner, _ = pair
    card_id = await new_card(client, admin, owner.id)
    before = snapshot(db)
    r = await set_attributes(client, owner, card_id, {"locked": True})
    assert_problem(r, 403, "forbidden")
    r = await set_attributes(client, owner, card_id, {"locked": False})
    assert_problem(r, 403, "forbidden")
    assert snapshot(db) == before
