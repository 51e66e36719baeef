"""Money: admin deposits, balances, the user's ledger, bad input, idempotency."""

import asyncio
import uuid

import httpx
import psycopg
import pytest

from tests.support.apitest import Account, Db, assert_problem, register_and_login
from tests.support.markettest import balance, fund, snapshot


async def test_deposit_credits_balance_and_ledger(
    client: httpx.AsyncClient, admin: Account, db: Db
) -> None:
    alice = await register_and_login(client)
    assert await balance(client, alice) == (0, 0)

    r = await client.post(
        "/admin/deposits",
        headers=admin.auth,
        json={"user_id": alice.id, "amount_cents": 12_345, "reference": "wire 2024-001"},
    )
    assert r.status_code == 201, r.text
    entry = r.json()
    assert entry["user_id"] == alice.id
    assert entry["amount_cents"] == 12_345
    assert entry["kind"] == "deposit"
    assert entry["reference"] == "wire 2024-001"
    await fund(client, admin, alice.id, 655)

    assert await balance(client, alice) == (13_000, 0)
    r = await client.get("/me/ledger", headers=alice.auth)
    assert r.status_code == 200
    items = r.json()["items"]
    assert [i["amount_cents"] for i in items] == [655, 12_345]  # newest first
    assert {i["kind"] for i in items} == {"deposit"}
    assert {i["account"] for i in items} == {"available"}
    assert items[1]["id"] == entry["id"]
    assert items[1]["reference_id"] == entry["reference_id"]

    # the counterpart is the external_deposits account, in the same transaction
    other_leg = db.value(
        "SELECT a.kind FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id "
        "WHERE e.transaction_id = %s AND e.amount_cents = -12345",
        uuid.UUID(entry["transaction_id"]),
    )
    assert other_leg == "external_deposits"
    audit = db.value(
        "SELECT details->>'reference' FROM audit_events WHERE action = 'ledger.deposit' "
        "AND entity_id = %s",
        entry["transaction_id"],
    )
    assert audit == "wire 2024-001"

    # someone else's ledger is not visible through /me
    bob = await register_and_login(client)
    r = await client.get("/me/ledger", headers=bob.auth)
    assert r.json()["items"] == []
    assert await balance(client, bob) == (0, 0)


async def test_ledger_pages_with_cursor(client: httpx.AsyncClient, admin: Account) -> None:
    carol = await register_and_login(client)
    for amount in range(1, 6):
        await fund(client, admin, carol.id, amount)
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        r = await client.get("/me/ledger", headers=carol.auth, params=params)
        assert r.status_code == 200
        seen += [i["amount_cents"] for i in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [5, 4, 3, 2, 1]
    r = await client.get("/me/ledger", headers=carol.auth, params={"cursor": "garbage!"})
    assert_problem(r, 422, "validation_error")


@pytest.mark.parametrize(
    "amount",
    [0, -1, -5_000, 10**12 + 1, 10**18, 2**63, 1.5, "100", None, True],
)
async def test_bad_deposit_amounts_change_nothing(
    client: httpx.AsyncClient, admin: Account, user: Account, db: Db, amount: object
) -> None:
    before = snapshot(db)
    r = await client.post(
        "/admin/deposits",
        headers=admin.auth,
        json={"user_id": user.id, "amount_cents": amount, "reference": "x"},
    )
    assert_problem(r, 422, "validation_error")
    assert snapshot(db) == before


async def test_deposit_refusals_change_nothing(
    client: httpx.AsyncClient, admin: Account, user: Account, db: Db
) -> None:
    before = snapshot(db)
    body = {"user_id": user.id, "amount_cents": 100, "reference": "x"}
    # not an admin (even for yourself), no token
    assert_problem(
        await client.post("/admin/deposits", headers=user.auth, json=body), 403, "forbidden"
    )
    assert_problem(await client.post("/admin/deposits", json=body), 401, "unauthorized")
    # unknown user, bad uuid, empty reference, extra field
    for bad in (
        {**body, "user_id": str(uuid.uuid4())},
        {**body, "user_id": "not-a-uuid"},
        {**body, "reference": ""},
        {**body, "reference": "r" * 201},
        {**body, "balance_cents": 5},
        {"user_id": user.id, "amount_cents": 100},
    ):
        r = await client.post("/admin/deposits", headers=admin.auth, json=bad)
        assert_problem(r, 422, "validation_error")
    # a bad key header
    r = await client.post(
        "/admin/deposits", headers={**admin.auth, "Idempotency-Key": "k" * 201}, json=body
    )
    assert_problem(r, 422, "validation_error")
    assert snapshot(db) == before


async def test_deposit_idempotency(client: httpx.AsyncClient, admin: Account, db: Db) -> None:
    dave = await register_and_login(client)
    key = {**admin.auth, "Idempotency-Key": f"dep-{uuid.uuid4()}"}
    body = {"user_id": dave.id, "amount_cents": 700, "reference": "retry me"}
    first = await client.post("/admin/deposits", headers=key, json=body)
    assert first.status_code == 201
    # same key + same body (other key order / spacing): the first answer, nothing more
    again = await client.post(
        "/admin/deposits",
        headers={**key, "Content-Type": "application/json"},
        content=f'{{"reference": "retry me", "amount_cents": 700,  "user_id": "{dave.id}"}}',
    )
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await balance(client, dave) == (700, 0)
    # same key, other body: refused, nothing moves
    before = snapshot(db)
    r = await client.post("/admin/deposits", headers=key, json={**body, "amount_cents": 701})
    assert_problem(r, 409, "idempotency_key_reused")
    assert snapshot(db) == before
    # the key is scoped per user: another admin may use the same string
    assert (
        db.value("SELECT count(*) FROM idempotency_keys WHERE key = %s", key["Idempotency-Key"])
        == 1
    )
    expires = db.value(
        "SELECT expires_at - created_at FROM idempotency_keys WHERE key = %s",
        key["Idempotency-Key"],
    )
    assert expires.total_seconds() == 24 * 3600


async def test_failed_request_stores_no_key(
    client: httpx.AsyncClient, admin: Account, db: Db
) -> None:
    """A refused request leaves no key behind, so the corrected retry executes."""
    key = {**admin.auth, "Idempotency-Key": f"dep-{uuid.uuid4()}"}
    r = await client.post(
        "/admin/deposits",
        headers=key,
        json={"user_id": str(uuid.uuid4()), "amount_cents": 5, "reference": "x"},
    )
    assert_problem(r, 422, "validation_error")
    assert (
        db.value("SELECT count(*) FROM idempotency_keys WHERE key = %s", key["Idempotency-Key"])
        == 0
    )


async def test_concurrent_deposits_with_one_key_execute_once(
    client: httpx.AsyncClient, admin: Account
) -> None:
    erin = await register_and_login(client)
    key = {**admin.auth, "Idempotency-Key": f"dep-{uuid.uuid4()}"}
    body = {"user_id": erin.id, "amount_cents": 999, "reference": "double click"}
    answers = await asyncio.gather(
        *(client.post("/admin/deposits", headers=key, json=body) for _ in range(6))
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert await balance(client, erin) == (999, 0)


async def test_expired_keys_are_purged_by_the_workers(
    client: httpx.AsyncClient, admin: Account, db: Db, platform: object
) -> None:
    """The housekeeping worker deletes keys past 24 h and leaves live ones alone."""
    from ops.stack.workers import Workers

    dave = await register_and_login(client)
    keys = [f"purge-{uuid.uuid4()}" for _ in range(2)]
    for key in keys:
        r = await client.post("/admin/deposits", headers={**admin.auth, "Idempotency-Key": key},
                              json={"user_id": dave.id, "amount_cents": 5, "reference": key})
        assert r.status_code == 201
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second' "
                     "WHERE key = %s", (keys[0],))
    workers = Workers(platform.settings, args=["--only", "idempotency"])  # type: ignore[attr-defined]
    workers.start()  # ready = every worker finished a cycle
    try:
        remaining = db.rows("SELECT key FROM idempotency_keys WHERE key = ANY(%s)", keys)
    finally:
        workers.stop()
    assert [row[0] for row in remaining] == [keys[1]]
