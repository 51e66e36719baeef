"""Trade offers over the API (in-process ASGI, real Postgres/Redis): create, read,
accept (atomic swap), reject, cancel, expiry on read, authorization and bad input."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.apitest import Account, Db, assert_problem, register_and_login
from tests.support.auctiontest import create_auction, snapshot
from tests.support.markettest import list_card, new_card


@pytest.fixture(scope="module")
async def trio(client: httpx.AsyncClient) -> list[Account]:
    """Sender, receiver and an outsider."""
    return list(await asyncio.gather(*(register_and_login(client) for _ in range(3))))


async def offer(
    client: httpx.AsyncClient, sender: Account, to: Account, offered: list[str],
    requested: list[str], **extra: Any,
) -> dict[str, Any]:
    r = await client.post(
        "/trade-offers",
        headers=sender.auth,
        json={"to_user_id": to.id, "offered_card_ids": offered,
              "requested_card_ids": requested, **extra},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def owner_of(client: httpx.AsyncClient, card_id: str) -> str:
    return str((await client.get(f"/cards/{card_id}")).json()["owner_id"])


async def test_accept_swaps_every_card_at_once(
    client: httpx.AsyncClient, admin: Account, trio: list[Account], db: Db
) -> None:
    alice, bob, _ = trio
    mine = [await new_card(client, admin, alice.id) for _ in range(2)]
    theirs = [await new_card(client, admin, bob.id) for _ in range(3)]
    created = await offer(client, alice, bob, mine, theirs, message="two for three?")
    assert created["status"] == "pending" and created["message"] == "two for three?"
    assert sorted(created["offered_card_ids"]) == sorted(mine)
    assert sorted(created["requested_card_ids"]) == sorted(theirs)
    expiry = datetime.fromisoformat(created["expires_at"]) - datetime.fromisoformat(
        created["created_at"])
    assert abs(expiry - timedelta(days=7)) < timedelta(seconds=5)

    r = await client.post(f"/trade-offers/{created['id']}/accept", headers=bob.auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted"
    for card_id in mine:
        assert await owner_of(client, card_id) == bob.id  # the cache serves the new owner
    for card_id in theirs:
        assert await owner_of(client, card_id) == alice.id
    history = db.rows(
        "SELECT card_id, from_user_id, to_user_id FROM card_history "
        "WHERE reason = 'trade' AND reference_id = %s", created["id"],
    )
    assert len(history) == 5
    assert {str(h[0]) for h in history} == set(mine + theirs)
    assert db.value(
        "SELECT count(*) FROM card_valuations WHERE card_id = ANY(%s::uuid[])", mine + theirs
    ) == 0  # a swap names no price
    assert db.value(
        "SELECT actor_id FROM audit_events WHERE action = 'trade_offer.accept' "
        "AND entity_id = %s", created["id"],
    ) == uuid.UUID(bob.id)
    before = snapshot(db)
    again = await client.post(f"/trade-offers/{created['id']}/accept", headers=bob.auth)
    assert_problem(again, 409, "offer_not_pending")
    assert snapshot(db) == before


async def test_reads_belong_to_the_two_parties(
    client: httpx.AsyncClient, admin: Account, trio: list[Account]
) -> None:
    alice, bob, eve = trio
    sent = await offer(client, alice, bob, [await new_card(client, admin, alice.id)], [])
    back = await offer(client, bob, alice, [], [await new_card(client, admin, alice.id)])

    for who in (alice, bob):
        r = await client.get(f"/trade-offers/{sent['id']}", headers=who.auth)
        assert r.status_code == 200 and r.json() == sent
    tag = (await client.get(f"/trade-offers/{sent['id']}", headers=bob.auth)).headers["etag"]
    r = await client.get(f"/trade-offers/{sent['id']}",
                         headers={**bob.auth, "If-None-Match": tag})
    assert r.status_code == 304
    assert_problem(await client.get(f"/trade-offers/{sent['id']}", headers=eve.auth),
                   404, "not_found")
    assert_problem(await client.get(f"/trade-offers/{sent['id']}"), 401, "unauthorized")

    ids = lambda page: [o["id"] for o in page.json()["items"]]  # noqa: E731
    sent_by_alice = await client.get("/trade-offers", params={"role": "sent"},
                                     headers=alice.auth)
    assert sent["id"] in ids(sent_by_alice) and back["id"] not in ids(sent_by_alice)
    received = await client.get("/trade-offers", params={"role": "received"}, headers=alice.auth)
    assert back["id"] in ids(received) and sent["id"] not in ids(received)
    both = await client.get("/trade-offers", params={"status": "pending"}, headers=alice.auth)
    assert {sent["id"], back["id"]} <= set(ids(both))
    outsider = await client.get("/trade-offers", headers=eve.auth)
    assert ids(outsider) == []
    first = await client.get("/trade-offers", params={"limit": 1}, headers=alice.auth)
    nxt = await client.get("/trade-offers", params={"limit": 1,
                                                    "cursor": first.json()["next_cursor"]},
                           headers=alice.auth)
    assert ids(first) != ids(nxt) and len(ids(nxt)) == 1
    for params in ({"role": "both"}, {"status": "open"}, {"cursor": "x"}, {"limit": 500}):
        assert_problem(await client.get("/trade-offers", params=params, headers=alice.auth),
                       422, "validation_error")


async def test_each_action_belongs_to_one_party(
    client: httpx.AsyncClient, admin: Account, trio: list[Account], db: Db
) -> None:
    alice, bob, eve = trio
    card = await new_card(client, admin, alice.id)
    pending = await offer(client, alice, bob, [card], [])
    before = snapshot(db)
    cases = [
        ("accept", alice, 403, "forbidden"),  # the sender cannot accept their own offer
        ("reject", alice, 403, "forbidden"),
        ("cancel", bob, 403, "forbidden"),  # only the sender cancels
        ("accept", eve, 404, "not_found"),  # an outsider learns nothing
        ("reject", eve, 404, "not_found"),
        ("cancel", eve, 404, "not_found"),
    ]
    for action, who, status, code in cases:
        r = await client.post(f"/trade-offers/{pending['id']}/{action}", headers=who.auth)
        assert_problem(r, status, code)
    for action in ("accept", "reject", "cancel"):
        r = await client.post(f"/trade-offers/{uuid.uuid4()}/{action}", headers=bob.auth)
        assert_problem(r, 404, "not_found")
        r = await client.post(f"/trade-offers/nope/{action}", headers=bob.auth)
        assert_problem(r, 422, "validation_error")
    assert snapshot(db) == before

    r = await client.post(f"/trade-offers/{pending['id']}/reject", headers=bob.auth)
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    other = await offer(client, alice, bob, [card], [])
    r = await client.post(f"/trade-offers/{other['id']}/cancel", headers=alice.auth)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    before = snapshot(db)
    for offer_id in (pending["id"], other["id"]):
        for action, who in (("accept", bob), ("reject", bob), ("cancel", alice)):
            r = await client.post(f"/trade-offers/{offer_id}/{action}", headers=who.auth)
            assert_problem(r, 409, "offer_not_pending")
    assert snapshot(db) == before
    assert await owner_of(client, card) == alice.id


async def test_accept_refused_when_a_card_moved_or_got_busy_since_the_offer(
    client: httpx.AsyncClient, admin: Account, trio: list[Account], db: Db
) -> None:
    alice, bob, eve = trio
    a1, a2 = await new_card(client, admin, alice.id), await new_card(client, admin, alice.id)
    b1 = await new_card(client, admin, bob.id)
    # a1 leaves alice through another accepted trade
    moved = await offer(client, alice, bob, [a1, a2], [b1])
    away = await offer(client, alice, eve, [a1], [])
    assert (await client.post(f"/trade-offers/{away['id']}/accept",
                              headers=eve.auth)).status_code == 200
    before = snapshot(db)
    r = await client.post(f"/trade-offers/{moved['id']}/accept", headers=bob.auth)
    assert_problem(r, 409, "card_unavailable")
    assert snapshot(db) == before  # a2 and b1 did not move either

    # the requested card went into an auction, then another got listed
    b2 = await new_card(client, admin, bob.id)
    in_auction = await offer(client, alice, bob, [a2], [b2])
    await create_auction(client, bob, b2)
    before = snapshot(db)
    r = await client.post(f"/trade-offers/{in_auction['id']}/accept", headers=bob.auth)
    assert_problem(r, 409, "card_unavailable")
    assert snapshot(db) == before
    a3 = await new_card(client, admin, alice.id)
    listed = await offer(client, alice, bob, [a3], [])
    await list_card(client, alice, a3, 5000)
    before = snapshot(db)
    r = await client.post(f"/trade-offers/{listed['id']}/accept", headers=bob.auth)
    assert_problem(r, 409, "card_unavailable")
    assert snapshot(db) == before
    assert await owner_of(client, a2) == alice.id and await owner_of(client, b1) == bob.id


async def test_past_due_offers_read_and_act_as_expired(
    client: httpx.AsyncClient, admin: Account, trio: list[Account], db: Db
) -> None:
    alice, bob, _ = trio
    card = await new_card(client, admin, alice.id)
    soon = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
    created = await offer(client, alice, bob, [card], [], expires_at=soon)
    assert datetime.fromisoformat(created["expires_at"]) == datetime.fromisoformat(soon)
    db.rows(
        "UPDATE trade_offers SET created_at = now() - interval '1 hour', "
        "expires_at = now() - interval '1 second' WHERE id = %s RETURNING id", created["id"],
    )
    r = await client.get(f"/trade-offers/{created['id']}", headers=bob.auth)
    assert r.json()["status"] == "expired"
    listed = await client.get("/trade-offers", params={"status": "expired"}, headers=bob.auth)
    assert created["id"] in [o["id"] for o in listed.json()["items"]]
    pending = await client.get("/trade-offers", params={"status": "pending"}, headers=bob.auth)
    assert created["id"] not in [o["id"] for o in pending.json()["items"]]
    before = snapshot(db)
    for action, who in (("accept", bob), ("reject", bob), ("cancel", alice)):
        r = await client.post(f"/trade-offers/{created['id']}/{action}", headers=who.auth)
        assert_problem(r, 409, "offer_not_pending")
    assert snapshot(db) == before
    assert await owner_of(client, card) == alice.id


async def test_bad_offers_write_nothing(
    client: httpx.AsyncClient, admin: Account, trio: list[Account], db: Db
) -> None:
    alice, bob, eve = trio
    mine = await new_card(client, admin, alice.id)
    theirs = await new_card(client, admin, bob.id)
    evesc = await new_card(client, admin, eve.id)
    busy = await new_card(client, admin, alice.id)
    await list_card(client, alice, busy, 100)
    now = datetime.now(UTC)
    base = {"to_user_id": bob.id, "offered_card_ids": [mine], "requested_card_ids": [theirs]}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**base, "offered_card_ids": [], "requested_card_ids": []}, 422, "validation_error"),
        ({**base, "offered_card_ids": [mine, mine]}, 422, "validation_error"),
        ({**base, "requested_card_ids": [mine]}, 422, "validation_error"),  # both sides
        ({**base, "to_user_id": alice.id}, 422, "validation_error"),
        ({**base, "to_user_id": "bob"}, 422, "validation_error"),
        ({**base, "offered_card_ids": ["x"]}, 422, "validation_error"),
        ({**base, "offered_card_ids": [str(uuid.uuid4())]}, 422, "validation_error"),
        ({**base, "expires_at": (now - timedelta(hours=1)).isoformat()}, 422,
         "validation_error"),
        ({**base, "expires_at": (now + timedelta(days=31)).isoformat()}, 422,
         "validation_error"),
        ({**base, "expires_at": "2030-01-01T00:00:00"}, 422, "validation_error"),
        ({**base, "message": "x" * 1001}, 422, "validation_error"),
        ({**base, "status": "accepted"}, 422, "validation_error"),
        ({**base, "from_user_id": eve.id}, 422, "validation_error"),
        ({**base, "offered_card_ids": [mine] * 51}, 422, "validation_error"),
        ({**base, "to_user_id": str(uuid.uuid4())}, 404, "not_found"),
        ({**base, "offered_card_ids": [theirs], "requested_card_ids": []}, 403,
         "card_not_owned"),
        ({**base, "requested_card_ids": [evesc]}, 403, "card_not_owned"),
        ({**base, "offered_card_ids": [busy]}, 409, "card_unavailable"),
    ]
    before = snapshot(db)
    for body, status, code in cases:
        r = await client.post("/trade-offers", headers=alice.auth, json=body)
        assert_problem(r, status, code)
    assert_problem(await client.post("/trade-offers", json=base), 401, "unauthorized")
    assert snapshot(db) == before


async def test_idempotent_accept_replays_the_answer(
    client: httpx.AsyncClient, admin: Account, trio: list[Account], db: Db
) -> None:
    alice, bob, _ = trio
    card = await new_card(client, admin, alice.id)
    created = await offer(client, alice, bob, [card], [])
    headers = {**bob.auth, "Idempotency-Key": f"accept-{uuid.uuid4()}"}
    first = await client.post(f"/trade-offers/{created['id']}/accept", headers=headers)
    assert first.status_code == 200, first.text
    again = await client.post(f"/trade-offers/{created['id']}/accept", headers=headers)
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert db.value(
        "SELECT count(*) FROM card_history WHERE reference_id = %s", created["id"]
    ) == 1
