"""/me/watchlist and /me/alerts against the API process: validation, idempotent
watching, object-level authorization, and the audit trail of every write."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.apitest import Account, Db, assert_problem, register_and_login
from tests.support.markettest import new_card


@pytest.fixture
async def live(live_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_url, timeout=15) as client:
        yield client


def _audit(db: Db, actor: str, action: str) -> int:
    return int(db.value("SELECT count(*) FROM audit_events WHERE actor_id = %s AND action = %s",
                        actor, action))


async def test_watch_is_idempotent_paged_and_per_user(
    live: httpx.AsyncClient, admin: Account, db: Db
) -> None:
    me = await register_and_login(live)
    other = await register_and_login(live)
    cards = [await new_card(live, admin, other.id) for _ in range(3)]

    r = await live.post("/me/watchlist", json={"card_id": cards[0]}, headers=me.auth)
    assert r.status_code == 201, r.text
    first = r.json()
    assert set(first) == {"card_id", "created_at"} and first["card_id"] == cards[0]
    r = await live.post("/me/watchlist", json={"card_id": cards[0]}, headers=me.auth)
    assert r.status_code == 200 and r.json() == first
    assert _audit(db, me.id, "watchlist.add") == 1  # the repeat wrote nothing
    for card in cards[1:]:
        r = await live.post("/me/watchlist", json={"card_id": card}, headers=me.auth)
        assert r.status_code == 201

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await live.get("/me/watchlist", params=params, headers=me.auth)).json()
        seen += [item["card_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == cards[::-1]  # newest first
    assert (await live.get("/me/watchlist", headers=other.auth)).json()["items"] == []

    r = await live.delete(f"/me/watchlist/{cards[1]}", headers=other.auth)
    assert_problem(r, 404, "not_found")  # not theirs to unwatch
    r = await live.delete(f"/me/watchlist/{cards[1]}", headers=me.auth)
    assert r.status_code == 204
    r = await live.delete(f"/me/watchlist/{cards[1]}", headers=me.auth)
    assert_problem(r, 404, "not_found")
    page = (await live.get("/me/watchlist", headers=me.auth)).json()
    assert [i["card_id"] for i in page["items"]] == [cards[2], cards[0]]
    assert _audit(db, me.id, "watchlist.remove") == 1


async def test_watch_refusals(live: httpx.AsyncClient) -> None:
    me = await register_and_login(live)
    r = await live.post("/me/watchlist", json={"card_id": str(uuid.uuid4())}, headers=me.auth)
    assert_problem(r, 404, "not_found")
    for body in ({}, {"card_id": "nope"}, {"card_id": str(uuid.uuid4()), "user_id": me.id}):
        r = await live.post("/me/watchlist", json=body, headers=me.auth)
        assert_problem(r, 422, "validation_error")
    r = await live.post("/me/watchlist", json={"card_id": str(uuid.uuid4())})
    assert_problem(r, 401, "unauthorized")
    assert_problem(await live.get("/me/watchlist"), 401, "unauthorized")


async def test_alerts_create_list_delete_owner_only(
    live: httpx.AsyncClient, admin: Account, db: Db
) -> None:
    me = await register_and_login(live)
    other = await register_and_login(live)
    card = await new_card(live, admin, other.id)

    r = await live.post("/me/alerts", json={"max_price_cents": 5000, "card_id": card},
                        headers=me.auth)
    assert r.status_code == 201, r.text
    by_card = r.json()
    assert by_card == {"id": by_card["id"], "max_price_cents": 5000, "card_id": card,
                       "set_name": None, "rarity": None, "created_at": by_card["created_at"]}
    r = await live.post("/me/alerts", headers=me.auth,
                        json={"max_price_cents": 900, "set_name": "Alpha", "rarity": "rare"})
    assert r.status_code == 201, r.text
    by_set = r.json()
    assert (by_set["set_name"], by_set["rarity"], by_set["card_id"]) == ("Alpha", "rare", None)

    r = await live.get("/me/alerts", headers=me.auth)
    assert [a["id"] for a in r.json()["items"]] == [by_set["id"], by_card["id"]]
    assert (await live.get("/me/alerts", headers=other.auth)).json()["items"] == []

    r = await live.delete(f"/me/alerts/{by_card['id']}", headers=other.auth)
    assert_problem(r, 404, "not_found")
    r = await live.delete(f"/me/alerts/{uuid.uuid4()}", headers=me.auth)
    assert_problem(r, 404, "not_found")
    r = await live.delete(f"/me/alerts/{by_card['id']}", headers=me.auth)
    assert r.status_code == 204
    r = await live.get("/me/alerts", headers=me.auth)
    assert [a["id"] for a in r.json()["items"]] == [by_set["id"]]
    assert (_audit(db, me.id, "price_alert.create"), _audit(db, me.id, "price_alert.delete")) \
        == (2, 1)


async def test_alert_validation(live: httpx.AsyncClient, db: Db) -> None:
    me = await register_and_login(live)
    bad: list[dict[str, Any]] = [
        {"max_price_cents": 100},  # no filter at all
        {"max_price_cents": 100, "set_name": "   "},  # a blank filter is no filter
        {"max_price_cents": 0, "set_name": "Alpha"},
        {"max_price_cents": -5, "set_name": "Alpha"},
        {"max_price_cents": 9.5, "set_name": "Alpha"},
        {"max_price_cents": "950", "set_name": "Alpha"},
        {"set_name": "Alpha"},
        {"max_price_cents": 100, "rarity": "mythic"},
        {"max_price_cents": 100, "card_id": "not-a-uuid"},
        {"max_price_cents": 100, "card_id": str(uuid.uuid4())},  # no such card
        {"max_price_cents": 100, "set_name": "Alpha", "user_id": me.id},
    ]
    for body in bad:
        r = await live.post("/me/alerts", json=body, headers=me.auth)
        assert_problem(r, 422, "validation_error")
    r = await live.post("/me/alerts", json={"max_price_cents": 100})
    assert_problem(r, 401, "unauthorized")
    assert db.value("SELECT count(*) FROM price_alerts WHERE user_id = %s", me.id) == 0
