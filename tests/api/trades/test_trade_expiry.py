"""Trade offers expire at ``expires_at`` whether or not anyone reads them: the
``trade_expirer`` worker (a real ``python -m api.workers`` process) writes the status
and an audit event with no actor."""

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from ece.settings import Settings
from tests.support.apitest import Account, Db, register_and_login
from tests.support.auctiontest import running_workers, wait_for
from tests.support.markettest import new_card


async def test_unread_offers_expire_on_their_own(
    client: httpx.AsyncClient, admin: Account, settings: Settings, db: Db
) -> None:
    alice, bob = await asyncio.gather(register_and_login(client), register_and_login(client))
    offers = []
    for _ in range(3):
        card = await new_card(client, admin, alice.id)
        r = await client.post("/trade-offers", headers=alice.auth, json={
            "to_user_id": bob.id, "offered_card_ids": [card], "requested_card_ids": [],
            "expires_at": (datetime.now(UTC) + timedelta(minutes=5)).isoformat()})
        assert r.status_code == 201, r.text
        offers.append(r.json()["id"])
    due, later = offers[:2], offers[2]
    db.rows("UPDATE trade_offers SET created_at = now() - interval '1 hour', "
            "expires_at = now() + interval '1 second' WHERE id = ANY(%s::uuid[]) RETURNING id",
            due)

    with running_workers(settings, 1, "--only", "trades"):
        wait_for(lambda: db.value("SELECT count(*) FROM trade_offers WHERE id = ANY(%s::uuid[]) "
                                  "AND status = 'expired'", due) == 2,
                 10, "the worker to expire the offers")

    for offer_id in due:
        events = db.rows("SELECT actor_id, ip FROM audit_events WHERE action = "
                         "'trade_offer.expire' AND entity_id = %s", offer_id)
        assert events == [(None, None)]
    assert db.value("SELECT status FROM trade_offers WHERE id = %s", later) == "pending"
    r = await client.get(f"/trade-offers/{due[0]}", headers=alice.auth)
    assert r.json()["status"] == "expired"
