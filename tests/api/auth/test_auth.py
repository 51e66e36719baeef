"""Registration, login, refresh rotation and reuse revocation, logout, token checks."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from ece.settings import get_settings
from tests.support.apitest import PASSWORD, Db, assert_problem, register_and_login, unique


async def test_register_returns_user_and_creates_accounts_and_custody_key(
    client: httpx.AsyncClient, db: Db
) -> None:
    name = unique()
    r = await client.post(
        "/auth/register",
        json={"email": f"{name.upper()}@Example.COM", "username": name, "password": PASSWORD},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"id", "email", "username", "role", "created_at"}
    assert body["email"] == f"{name}@example.com"
    assert body["role"] == "user"
    kinds = db.rows(
        "SELECT kind, balance_cents FROM ledger_accounts WHERE user_id = %s", body["id"]
    )
    assert sorted(kinds) == [("user_available", 0), ("user_held", 0)]
    address, secret, key_id = db.rows(
        "SELECT k.address, k.secret_enc, k.key_id FROM custody_keys k WHERE user_id = %s",
        body["id"],
    )[0]
    assert address == db.value("SELECT custody_address FROM users WHERE id = %s", body["id"])
    assert key_id.startswith("custody:")
    # The secret decrypts to the keypair of that address, and is not stored in clear.
    from solders.keypair import Keypair

    from api.core.crypto import custody_cipher

    raw = custody_cipher(get_settings()).open(bytes(secret), aad=body["id"].encode())
    assert str(Keypair.from_bytes(raw).pubkey()) == address
    assert raw not in bytes(secret)


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"email": "not-an-email", "username": "validname", "password": PASSWORD}, "email"),
        ({"email": "a@example.com", "username": "validname", "password": "short"}, "password"),
        ({"email": "a@example.com", "username": "x", "password": PASSWORD}, "username"),
        ({"email": "a@example.com", "username": "has space", "password": PASSWORD}, "username"),
        ({"email": "a@example.com", "username": "u" * 33, "password": PASSWORD}, "username"),
        ({"email": "a@example.com", "password": PASSWORD}, "username"),
        ({"email": 12, "username": "validname", "password": PASSWORD}, "email"),
        (
            {
                "email": "a@example.com",
                "username": "validname",
                "password": PASSWORD,
                "role": "admin",
            },
            "role",
        ),
    ],
)
async def test_register_bad_input_is_422_and_writes_nothing(
    client: httpx.AsyncClient, db: Db, payload: dict[str, object], where: str
) -> None:
    before = db.counts()
    r = await client.post("/auth/register", json=payload)
    body = assert_problem(r, 422, "validation_error")
    assert any(where in map(str, e["loc"]) for e in body["errors"]), body
    assert PASSWORD not in r.text  # inputs are never echoed back
    assert db.counts() == before


async def test_register_not_json_is_422(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/auth/register", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert_problem(r, 422, "validation_error")


async def test_duplicate_email_or_username_is_409_case_insensitive(
    client: httpx.AsyncClient, db: Db
) -> None:
    name = unique()
    ok = {"email": f"{name}@example.com", "username": name, "password": PASSWORD}
    assert (await client.post("/auth/register", json=ok)).status_code == 201
    before = db.counts()
    same_email = {**ok, "email": ok["email"].upper(), "username": unique()}
    body = assert_problem(await client.post("/auth/register", json=same_email), 409, "conflict")
    assert "email" in body["detail"]
    same_name = {**ok, "email": f"{unique()}@example.com", "username": name.upper()}
    body = assert_problem(await client.post("/auth/register", json=same_name), 409, "conflict")
    assert "username" in body["detail"]
    assert db.counts() == before


async def test_concurrent_duplicate_registration_one_wins(
    client: httpx.AsyncClient, db: Db
) -> None:
    name = unique()
    payload = {"email": f"{name}@example.com", "username": name, "password": PASSWORD}
    responses = await asyncio.gather(
        *(client.post("/auth/register", json=payload) for _ in range(4))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409], [r.text for r in responses]
    for r in responses:
        if r.status_code == 409:
            assert_problem(r, 409, "conflict")
    assert db.value("SELECT count(*) FROM users WHERE username = %s", name) == 1
    user_id = db.value("SELECT id FROM users WHERE username = %s", name)
    assert db.value("SELECT count(*) FROM ledger_accounts WHERE user_id = %s", user_id) == 2


async def test_login_by_email_or_username_and_failures_are_audited(
    client: httpx.AsyncClient, db: Db
) -> None:
    account = await register_and_login(client)
    r = await client.post(
        "/auth/login", json={"login": account.email.upper(), "password": PASSWORD}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == get_settings().access_token_ttl_seconds
    ok_events = db.value(
        "SELECT count(*) FROM audit_events WHERE action = 'auth.login' AND actor_id = %s",
        account.id,
    )
    assert ok_events == 2

    r = await client.post(
        "/auth/login", json={"login": account.username, "password": "wrong-password"}
    )
    assert_problem(r, 401, "unauthorized")
    r = await client.post("/auth/login", json={"login": unique(), "password": PASSWORD})
    assert_problem(r, 401, "unauthorized")
    failed = db.rows(
        "SELECT actor_id, details FROM audit_events WHERE action = 'auth.login_failed' "
        "ORDER BY id DESC LIMIT 2"
    )
    assert failed[1][0] is not None and str(failed[1][0]) == account.id
    assert failed[0][0] is None
    assert all("password" not in str(details) for _, details in failed)


async def test_refresh_rotates_and_reuse_revokes_the_family(client: httpx.AsyncClient) -> None:
    account = await register_and_login(client)
    r1 = await client.post("/auth/refresh", json={"refresh_token": account.refresh})
    assert r1.status_code == 200, r1.text
    second = r1.json()
    assert second["refresh_token"] != account.refresh
    r2 = await client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert r2.status_code == 200
    third = r2.json()

    # The first token is dead: presenting it again is reuse, which kills the family.
    assert_problem(
        await client.post("/auth/refresh", json={"refresh_token": account.refresh}),
        401,
        "unauthorized",
    )
    assert_problem(
        await client.post("/auth/refresh", json={"refresh_token": third["refresh_token"]}),
        401,
        "unauthorized",
    )
    # Access tokens of that session stop working too.
    me = await client.get("/me", headers={"Authorization": f"Bearer {third['access_token']}"})
    assert_problem(me, 401, "unauthorized")
    # Another login is a new family and works.
    fresh = await client.post("/auth/login", json={"login": account.username, "password": PASSWORD})
    assert fresh.status_code == 200


async def test_unknown_refresh_token_is_401(client: httpx.AsyncClient) -> None:
    r = await client.post("/auth/refresh", json={"refresh_token": "not-a-token"})
    assert_problem(r, 401, "unauthorized")


async def test_logout_revokes_session(client: httpx.AsyncClient) -> None:
    account = await register_and_login(client)
    r = await client.post(
        "/auth/logout", json={"refresh_token": account.refresh}, headers=account.auth
    )
    assert r.status_code == 204
    assert_problem(
        await client.post("/auth/refresh", json={"refresh_token": account.refresh}),
        401,
        "unauthorized",
    )
    assert_problem(await client.get("/me", headers=account.auth), 401, "unauthorized")


async def test_logout_requires_auth(client: httpx.AsyncClient) -> None:
    r = await client.post("/auth/logout", json={"refresh_token": "x"})
    assert_problem(r, 401, "unauthorized")


async def test_me(client: httpx.AsyncClient) -> None:
    account = await register_and_login(client)
    r = await client.get("/me", headers=account.auth)
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == account.id
    assert body["custody_address"]
    assert "password_hash" not in body


def _token(claims_delta: dict[str, object], key: str | None = None) -> str:
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "iss": "ece",
        "sub": str(uuid.uuid4()),
        "role": "admin",
        "typ": "access",
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    claims.update(claims_delta)
    return jwt.encode(claims, key or get_settings().jwt_key, algorithm="HS256")


def _unsigned(claims: dict[str, object]) -> str:
    """An ``alg: none`` token: must never be accepted."""
    import base64
    import json

    def b64(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


async def test_forged_expired_and_malformed_tokens_are_401(client: httpx.AsyncClient) -> None:
    account = await register_and_login(client)
    bad = [
        _token({"sub": account.id}, key="not-the-key" * 4),  # forged signature
        _token({"sub": account.id, "exp": datetime.now(UTC) - timedelta(seconds=5)}),  # expired
        _token({"sub": account.id, "typ": "refresh"}),  # wrong token type
        _token({"sub": str(uuid.uuid4())}),  # unknown user
        "garbage",
        _unsigned({"iss": "ece", "sub": account.id, "typ": "access", "exp": 4102444800}),
    ]
    for token in bad:
        r = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert_problem(r, 401, "unauthorized")
        assert r.headers.get("www-authenticate") == "Bearer"
    assert_problem(await client.get("/me"), 401, "unauthorized")


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/auth/login", {"login": "someone"}),
        ("/auth/login", {"password": PASSWORD}),
        ("/auth/login", {"login": "", "password": PASSWORD}),
        ("/auth/login", {"login": "x" * 321, "password": PASSWORD}),
        ("/auth/login", {"login": ["a"], "password": PASSWORD}),
        ("/auth/login", {"login": "a", "password": PASSWORD, "remember": True}),
        ("/auth/refresh", {}),
        ("/auth/refresh", {"refresh_token": 5}),
        ("/auth/refresh", {"refresh_token": "t" * 201}),
    ],
)
async def test_auth_bad_input_is_422_and_writes_nothing(
    client: httpx.AsyncClient, db: Db, path: str, payload: dict[str, object]
) -> None:
    before = db.counts()
    assert_problem(await client.post(path, json=payload), 422, "validation_error")
    assert db.counts() == before


async def test_logout_bad_input_is_422(client: httpx.AsyncClient, db: Db) -> None:
    account = await register_and_login(client)
    before = db.counts()
    r = await client.post("/auth/logout", json={"token": "x"}, headers=account.auth)
    assert_problem(r, 422, "validation_error")
    assert db.counts() == before


async def test_logout_with_someone_elses_token_revokes_nothing(client: httpx.AsyncClient) -> None:
    alice = await register_and_login(client)
    bob = await register_and_login(client)
    r = await client.post("/auth/logout", json={"refresh_token": bob.refresh}, headers=alice.auth)
    assert r.status_code == 204
    assert (
        await client.post("/auth/refresh", json={"refresh_token": bob.refresh})
    ).status_code == 200
