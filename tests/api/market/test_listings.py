"""Listings: lifecycle, object-level authorization, filters and paging, bad input."""

import uuid

import httpx
import pytest

from tests.support.apitest import Account, Db, assert_problem, register_and_login
from tests.support.markettest import list_card, new_card, snapshot


async def _card_status(client: httpx.AsyncClient, card_id: str) -> str:
    r = await client.get(f"/cards/{card_id}")
    assert r.status_code == 200
    return str(r.json()["status"])


async def test_listing_lifecycle(client: httpx.AsyncClient, admin: Account, db: Db) -> None:
    seller = await register_and_login(client)
    card_id = await new_card(client, admin, seller.id)

    listing = await list_card(client, seller, card_id, 2_500)
    assert listing["status"] == "active"
    assert listing["seller_id"] == seller.id
    assert listing["price_cents"] == 2_500
    assert await _card_status(client, card_id) == "listed"  # cache refreshed after commit

    r = await client.get(f"/listings/{listing['id']}")
    assert r.status_code == 200
    assert r.json() == listing
    tag = r.headers["ETag"]
    r = await client.get(f"/listings/{listing['id']}", headers={"If-None-Match": tag})
    assert r.status_code == 304

    # a listed card cannot be listed twice
    before = snapshot(db)
    r = await client.post(
        "/listings", headers=seller.auth, json={"card_id": card_id, "price_cents": 1}
    )
    assert_problem(r, 409, "card_unavailable")
    assert snapshot(db) == before

    r = await client.delete(f"/listings/{listing['id']}", headers=seller.auth)
    assert r.status_code == 204
    assert await _card_status(client, card_id) == "available"
    r = await client.get(f"/listings/{listing['id']}")
    assert r.json()["status"] == "cancelled"
    assert r.headers["ETag"] != tag
    # cancelling twice: no longer active
    r = await client.delete(f"/listings/{listing['id']}", headers=seller.auth)
    assert_problem(r, 409, "listing_not_active")
    # and the card can be listed again
    again = await list_card(client, seller, card_id, 3_000)
    actions = db.rows(
        "SELECT action FROM audit_events WHERE entity_id IN (%s, %s) ORDER BY id",
        listing["id"],
        again["id"],
    )
    assert [a for (a,) in actions] == ["listing.create", "listing.cancel", "listing.create"]


async def test_admin_may_cancel_any_listing(client: httpx.AsyncClient, admin: Account) -> None:
    seller = await register_and_login(client)
    card_id = await new_card(client, admin, seller.id)
    listing = await list_card(client, seller, card_id, 100)
    r = await client.delete(f"/listings/{listing['id']}", headers=admin.auth)
    assert r.status_code == 204
    assert await _card_status(client, card_id) == "available"


async def test_object_level_authorization(
    client: httpx.AsyncClient, admin: Account, db: Db
) -> None:
    owner = await register_and_login(client)
    mallory = await register_and_login(client)
    card_id = await new_card(client, admin, owner.id)
    listing = await list_card(client, owner, card_id, 500)
    other_card = await new_card(client, admin, owner.id)

    before = snapshot(db)
    # listing someone else's card
    r = await client.post(
        "/listings", headers=mallory.auth, json={"card_id": other_card, "price_cents": 1}
    )
    assert_problem(r, 403, "card_not_owned")
    # an admin is not the owner either
    r = await client.post(
        "/listings", headers=admin.auth, json={"card_id": other_card, "price_cents": 1}
    )
    assert_problem(r, 403, "card_not_owned")
    # cancelling someone else's listing
    r = await client.delete(f"/listings/{listing['id']}", headers=mallory.auth)
    assert_problem(r, 403, "forbidden")
    # writing fields that are not writable (seller, status)
    r = await client.post(
        "/listings",
        headers=mallory.auth,
        json={"card_id": other_card, "price_cents": 1, "seller_id": owner.id},
    )
    assert_problem(r, 422, "validation_error")
    # anonymous writes
    assert_problem(
        await client.post("/listings", json={"card_id": other_card, "price_cents": 1}),
        401,
        "unauthorized",
    )
    assert_problem(await client.delete(f"/listings/{listing['id']}"), 401, "unauthorized")
    assert snapshot(db) == before
    assert await _card_status(client, card_id) == "listed"


@pytest.mark.parametrize("price", [0, -1, -(10**9), 10**12 + 1, 2**63, 12.5, "100", None])
async def test_bad_prices_change_nothing(
    client: httpx.AsyncClient, admin: Account, user: Account, db: Db, price: object
) -> None:
    card_id = await new_card(client, admin, user.id)
    before = snapshot(db)
    r = await client.post(
        "/listings", headers=user.auth, json={"card_id": card_id, "price_cents": price}
    )
    assert_problem(r, 422, "validation_error")
    assert snapshot(db) == before


async def test_unknown_and_malformed_ids(client: httpx.AsyncClient, user: Account, db: Db) -> None:
    before = snapshot(db)
    missing = str(uuid.uuid4())
    r = await client.post(
        "/listings", headers=user.auth, json={"card_id": missing, "price_cents": 10}
    )
    # A body that refers to a missing card is invalid (422), as for auctions and trades.
    assert_problem(r, 422, "validation_error")
    r = await client.post(
        "/listings", headers=user.auth, json={"card_id": "nope", "price_cents": 10}
    )
    assert_problem(r, 422, "validation_error")
    assert_problem(await client.get(f"/listings/{missing}"), 404, "not_found")
    assert_problem(await client.get("/listings/not-a-uuid"), 422, "validation_error")
    assert_problem(await client.delete(f"/listings/{missing}", headers=user.auth), 404, "not_found")
    assert_problem(await client.delete("/listings/12", headers=user.auth), 422, "validation_error")
    assert_problem(
        await client.post(f"/listings/{missing}/purchase", headers=user.auth), 404, "not_found"
    )
    assert_problem(
        await client.post("/listings/xyz/purchase", headers=user.auth), 422, "validation_error"
    )
    # read endpoints that take an id
    assert_problem(await client.get(f"/users/{missing}/portfolio"), 404, "not_found")
    assert_problem(await client.get("/users/me/portfolio"), 422, "validation_error")
    assert_problem(await client.get(f"/cards/{missing}/valuations"), 404, "not_found")
    assert_problem(await client.get("/cards/1/valuations"), 422, "validation_error")
    assert snapshot(db) == before


async def test_empty_portfolio_and_valuations(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    newcomer = await register_and_login(client)
    r = await client.get(f"/users/{newcomer.id}/portfolio")
    assert r.status_code == 200
    assert r.json() == {"user_id": newcomer.id, "card_count": 0, "value_cents": 0, "cards": []}
    card_id = await new_card(client, admin, newcomer.id)
    r = await client.get(f"/cards/{card_id}/valuations")
    assert r.json() == {"items": [], "next_cursor": None}
    r = await client.get(f"/users/{newcomer.id}/portfolio")
    assert r.json()["cards"] == [{"card_id": card_id, "value_cents": 0}]


async def test_browse_filters_sorts_and_pages(client: httpx.AsyncClient, admin: Account) -> None:
    seller = await register_and_login(client)
    prices = [700, 100, 500, 300, 900, 300]
    ids = []
    for price in prices:
        card_id = await new_card(client, admin, seller.id)
        ids.append((await list_card(client, seller, card_id, price))["id"])

    async def walk(**params: object) -> list[dict[str, object]]:
        items: list[dict[str, object]] = []
        cursor = None
        while True:
            query = {"seller_id": seller.id, "limit": 2, **params}
            if cursor:
                query["cursor"] = cursor
            r = await client.get("/listings", params=query)
            assert r.status_code == 200, r.text
            items += r.json()["items"]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                return items

    by_price = await walk(sort="price")
    assert [i["price_cents"] for i in by_price] == sorted(prices)
    assert [i["price_cents"] for i in await walk(sort="-price")] == sorted(prices, reverse=True)
    assert [i["id"] for i in await walk(sort="created")] == ids
    assert [i["id"] for i in await walk()] == ids[::-1]  # default -created
    window = await walk(sort="price", min_price_cents=300, max_price_cents=700)
    assert [i["price_cents"] for i in window] == [300, 300, 500, 700]

    one = await walk(card_id=by_price[0]["card_id"])
    assert [i["id"] for i in one] == [by_price[0]["id"]]

    await client.delete(f"/listings/{ids[0]}", headers=seller.auth)
    assert ids[0] not in [i["id"] for i in await walk()]  # default status=active
    assert [i["id"] for i in await walk(status="cancelled")] == [ids[0]]

    # a cursor from one sort is refused by another; bad filters are 422
    r = await client.get("/listings", params={"seller_id": seller.id, "limit": 1, "sort": "price"})
    cursor = r.json()["next_cursor"]
    r = await client.get("/listings", params={"cursor": cursor, "sort": "-created"})
    assert_problem(r, 422, "validation_error")
    for bad in (
        {"sort": "name"},
        {"status": "gone"},
        {"limit": 0},
        {"limit": 201},
        {"min_price_cents": -1},
        {"min_price_cents": 5, "max_price_cents": 4},
        {"seller_id": "x"},
    ):
        assert_problem(await client.get("/listings", params=bad), 422, "validation_error")
