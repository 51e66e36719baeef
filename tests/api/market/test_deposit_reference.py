"""A deposit reference credits once: a retry without (or with another)
Idempotency-Key is 409 ``conflict`` and moves nothing; a replay of the same key
still answers the first deposit."""

import asyncio
import uuid

import httpx

from tests.support.apitest import Account, Db, assert_problem, register_and_login
from tests.support.markettest import balance, snapshot


async def deposit(
    client: httpx.AsyncClient, admin: Account, body: dict[str, object], key: str | None = None
) -> httpx.Response:
    headers = {**admin.auth, **({"Idempotency-Key": key} if key else {})}
    return await client.post("/admin/deposits", headers=headers, json=body)


async def test_a_reused_reference_is_a_conflict_and_credits_once(
    client: httpx.AsyncClient, admin: Account, db: Db
) -> None:
    alice, bob = await register_and_login(client), await register_and_login(client)
    reference = f"wire-{uuid.uuid4()}"
    body = {"user_id": alice.id, "amount_cents": 1_000, "reference": reference}
    assert (await deposit(client, admin, body)).status_code == 201
    before = snapshot(db)

    for retry in (
        body,  # a plain retry
        {**body, "amount_cents": 2_000},  # another amount
        {**body, "user_id": bob.id},  # another user
        {**body, "reference": f"  {reference} "},  # the same reference, padded
    ):
        r = await deposit(client, admin, retry)
        assert "already credited" in assert_problem(r, 409, "conflict")["detail"]
    r = await deposit(client, admin, body, key=f"k-{uuid.uuid4()}")  # a new key: still once
    assert_problem(r, 409, "conflict")

    assert snapshot(db) == before
    assert await balance(client, alice) == (1_000, 0)
    assert await balance(client, bob) == (0, 0)


async def test_an_idempotent_replay_still_answers_the_first_deposit(
    client: httpx.AsyncClient, admin: Account
) -> None:
    carol = await register_and_login(client)
    body = {"user_id": carol.id, "amount_cents": 300, "reference": f"r-{uuid.uuid4()}"}
    key = f"k-{uuid.uuid4()}"
    first = await deposit(client, admin, body, key)
    again = await deposit(client, admin, body, key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert await balance(client, carol) == (300, 0)


async def test_concurrent_deposits_of_one_reference_credit_once(
    client: httpx.AsyncClient, admin: Account
) -> None:
    dave = await register_and_login(client)
    body = {"user_id": dave.id, "amount_cents": 77, "reference": f"race-{uuid.uuid4()}"}
    answers = await asyncio.gather(
        *(deposit(client, admin, body, key=f"k-{uuid.uuid4()}") for _ in range(5))
    )
    assert sorted(r.status_code for r in answers) == [201] + [409] * 4
    assert await balance(client, dave) == (77, 0)
