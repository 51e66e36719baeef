"""A trade accept racing a listing or an auction of the same card, and two accepts
racing for one card, over real HTTP (uvicorn, real Postgres): exactly one wins and
the loser changes nothing."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.apitest import Account, Db, register_and_login
from tests.support.markettest import new_card

ROUNDS = 4


@pytest.fixture
async def live(live_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
async def pair(client: httpx.AsyncClient) -> tuple[Account, Account]:
    alice, bob = await asyncio.gather(register_and_login(client), register_and_login(client))
    return alice, bob


async def _offer(live: httpx.AsyncClient, sender: Account, to: Account, card_id: str) -> str:
    r = await live.post("/trade-offers", headers=sender.auth, json={
        "to_user_id": to.id, "offered_card_ids": [card_id], "requested_card_ids": []})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


@pytest.mark.parametrize("route", ["/listings", "/auctions"])
async def test_accept_racing_a_listing_of_the_same_card(
    client: httpx.AsyncClient, live: httpx.AsyncClient, admin: Account,
    pair: tuple[Account, Account], db: Db, route: str,
) -> None:
    alice, bob = pair
    body = {"price_cents": 5000} if route == "/listings" else {
        "start_price_cents": 5000, "duration_seconds": 600}
    winners = set()
    for _ in range(ROUNDS):
        card_id = await new_card(client, admin, alice.id)
        offer_id = await _offer(live, alice, bob, card_id)
        accept, listing = await asyncio.gather(
            live.post(f"/trade-offers/{offer_id}/accept", headers=bob.auth),
            live.post(route, headers=alice.auth, json={"card_id": card_id, **body}),
        )
        owner, status, version = db.rows(
            "SELECT owner_id, status, version FROM cards WHERE id = %s", card_id)[0]
        trades = db.value("SELECT count(*) FROM card_history WHERE card_id = %s "
                          "AND reason = 'trade'", card_id)
        offer_status = db.value("SELECT status FROM trade_offers WHERE id = %s", offer_id)
        active = db.value(f"SELECT count(*) FROM {route.strip('/')} WHERE card_id = %s "
                          "AND status = 'active'", card_id)
        if accept.status_code == 200:
            winners.add("accept")
            assert listing.status_code == 403 and listing.json()["code"] == "card_not_owned"
            assert (str(owner), status, trades, offer_status, active) == (
                bob.id, "available", 1, "accepted", 0)
            assert version == 2
        else:
            winners.add("listing")
            assert accept.status_code == 409 and accept.json()["code"] == "card_unavailable"
            assert listing.status_code == 201, listing.text
            expected_status = "listed" if route == "/listings" else "in_auction"
            assert (str(owner), status, trades, offer_status, active) == (
                alice.id, expected_status, 0, "pending", 1)
        served = (await live.get(f"/cards/{card_id}")).json()
        assert (served["owner_id"], served["status"]) == (str(owner), status)
    assert winners  # whichever won, exactly one did in every round


async def test_two_accepts_racing_for_one_card(
    client: httpx.AsyncClient, live: httpx.AsyncClient, admin: Account,
    pair: tuple[Account, Account], db: Db,
) -> None:
    alice, bob = pair
    eve = await register_and_login(client)
    for _ in range(ROUNDS):
        card_id = await new_card(client, admin, alice.id)
        to_bob = await _offer(live, alice, bob, card_id)
        to_eve = await _offer(live, alice, eve, card_id)
        answers = await asyncio.gather(
            live.post(f"/trade-offers/{to_bob}/accept", headers=bob.auth),
            live.post(f"/trade-offers/{to_eve}/accept", headers=eve.auth),
        )
        codes = sorted(r.status_code for r in answers)
        assert codes == [200, 409], [r.text for r in answers]
        loser = next(r for r in answers if r.status_code == 409)
        assert loser.json()["code"] == "card_unavailable"
        winner = bob if answers[0].status_code == 200 else eve
        assert str(db.value("SELECT owner_id FROM cards WHERE id = %s", card_id)) == winner.id
        assert db.value("SELECT count(*) FROM card_history WHERE card_id = %s", card_id) == 2
