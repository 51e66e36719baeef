"""Request rate limits and failed-login lockouts against the real Redis.

Limits are read from ``ECE_RATE_LIMIT_*`` on every request, so a test lowers them
with ``monkeypatch`` for the shared app. Each test talks from its own client
address (and with fresh users) so its counters are its own.
"""

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from solders.keypair import Keypair

from api.web import ratelimit
from tests.support.apitest import PASSWORD, Account, Db, assert_problem, register_and_login

_addresses = itertools.count(1)


@asynccontextmanager
async def client_from(app: FastAPI, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as c:
        yield c


def fresh_ip() -> str:
    return f"203.0.113.{next(_addresses)}"


def limit_headers(r: httpx.Response) -> tuple[int, int, int]:
    return (
        int(r.headers["RateLimit-Limit"]),
        int(r.headers["RateLimit-Remaining"]),
        int(r.headers["RateLimit-Reset"]),
    )


async def login(c: httpx.AsyncClient, who: str, password: str = PASSWORD) -> httpx.Response:
    return await c.post("/auth/login", json={"login": who, "password": password})


def login_rows(db: Db, account: Account) -> tuple[int, int]:
    """(audit events about this account's logins, refresh sessions of this account)."""
    events = db.value(
        "SELECT count(*) FROM audit_events WHERE entity_id = %s AND action LIKE 'auth.login%%'",
        account.id,
    )
    sessions = db.value("SELECT count(*) FROM refresh_sessions WHERE user_id = %s", account.id)
    return int(events), int(sessions)


async def test_per_user_limit_answers_429_with_headers(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with client_from(app, fresh_ip()) as c:
        alice = await register_and_login(c)
        bob = await register_and_login(c)
        monkeypatch.setenv("ECE_RATE_LIMIT_USER", "3")

        answers = [await c.get("/me", headers=alice.auth) for _ in range(3)]
        for n, r in enumerate(answers, start=1):
            assert r.status_code == 200
            limit, remaining, reset = limit_headers(r)
            assert (limit, remaining) == (3, 3 - n)
            assert 1 <= reset <= 60

        r = await c.get("/me", headers=alice.auth)
        body = assert_problem(r, 429, "rate_limited")
        assert "user" in body["detail"]
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert limit_headers(r)[:2] == (3, 0)
        # Per user: another user on the same address is not affected.
        assert (await c.get("/me", headers=bob.auth)).status_code == 200


async def test_per_ip_limit_and_exempt_probes(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECE_RATE_LIMIT_IP", "2")
    async with client_from(app, fresh_ip()) as c, client_from(app, fresh_ip()) as other:
        assert (await c.get("/cards")).status_code == 200
        assert (await c.get("/cards")).status_code == 200
        r = await c.post("/auth/register", json={"email": "x@example.com"})
        assert_problem(r, 429, "rate_limited")
        assert int(r.headers["Retry-After"]) >= 1
        assert limit_headers(r)[:2] == (2, 0)
        # Probes and metrics are never throttled, and carry no limit headers.
        for path in ("/healthz", "/metrics", "/readyz"):
            probe = await c.get(path)
            assert probe.status_code in (200, 503), path
            assert "RateLimit-Limit" not in probe.headers
        assert (await c.get("http://test/healthz")).status_code == 200
        # Another client address has its own budget.
        assert (await other.get("/cards")).status_code == 200


async def test_limit_is_exact_under_concurrency(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECE_RATE_LIMIT_IP", "7")
    async with client_from(app, fresh_ip()) as c:
        answers = await asyncio.gather(*(c.get("/cards") for _ in range(12)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(429) == 5, statuses
    assert sorted(limit_headers(r)[1] for r in answers if r.status_code == 200) == list(range(7))


async def test_failed_logins_lock_that_address_out_even_with_the_right_password(
    app: FastAPI, db: Db
) -> None:
    """Five failures lock the (account, client address) pair; the owner elsewhere is
    not locked out (``test_abuse_controls`` covers the account-wide ceiling)."""
    async with client_from(app, fresh_ip()) as c:
        victim = await register_and_login(c)
        bystander = await register_and_login(c)
    async with client_from(app, fresh_ip()) as attacker:
        for _ in range(5):
            r = await login(attacker, victim.username, "wrong-password")
            assert_problem(r, 401, "unauthorized")
        before = login_rows(db, victim)

        # Locked: the right password, by email this time, from the same address.
        r = await login(attacker, victim.email)
        body = assert_problem(r, 429, "rate_limited")
        assert "account" in body["detail"]
        assert 800 <= int(r.headers["Retry-After"]) <= 900
        assert r.headers["RateLimit-Limit"] == "5" and r.headers["RateLimit-Remaining"] == "0"
        # A locked attempt is not a login: no session, no audit event.
        assert login_rows(db, victim) == before
        # The lock is per account: the attacker's address may still log others in.
        assert (await login(attacker, bystander.username)).status_code == 200
    # ... and per address: the owner, from their own, signs in.
    async with client_from(app, fresh_ip()) as owner:
        assert (await login(owner, victim.email)).status_code == 200


async def test_success_clears_the_failures_of_the_account(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with client_from(app, fresh_ip()) as c:
        account = await register_and_login(c)
        monkeypatch.setenv("ECE_RATE_LIMIT_LOGIN_ACCOUNT", "3")
        for _ in range(2):
            for _ in range(2):
                assert (await login(c, account.username, "wrong-password")).status_code == 401
            assert (await login(c, account.username)).status_code == 200
        for _ in range(3):
            assert (await login(c, account.username, "wrong-password")).status_code == 401
        assert (await login(c, account.username)).status_code == 429


async def test_concurrent_guesses_cannot_exceed_the_limit(
    app: FastAPI, db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with client_from(app, fresh_ip()) as c:
        account = await register_and_login(c)
        monkeypatch.setenv("ECE_RATE_LIMIT_LOGIN_ACCOUNT", "3")
        failures_before = db.value(
            "SELECT count(*) FROM audit_events WHERE action = 'auth.login_failed' "
            "AND entity_id = %s",
            account.id,
        )
        answers = await asyncio.gather(
            *(login(c, account.username, f"guess-{i:04d}-xx") for i in range(8))
        )
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [401] * 3 + [429] * 5, statuses
    failures = db.value(
        "SELECT count(*) FROM audit_events WHERE action = 'auth.login_failed' AND entity_id = %s",
        account.id,
    )
    assert failures - failures_before == 3


async def test_failed_logins_are_limited_per_ip(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with client_from(app, fresh_ip()) as c:
        account = await register_and_login(c)
    monkeypatch.setenv("ECE_RATE_LIMIT_LOGIN_IP", "3")
    async with client_from(app, fresh_ip()) as sprayer:
        for i in range(3):  # three different accounts, one guess each
            assert (await login(sprayer, f"nobody-{i}-{account.username}", "x")).status_code == 401
        r = await login(sprayer, account.username)
        body = assert_problem(r, 429, "rate_limited")
        assert "client address" in body["detail"]
    async with client_from(app, fresh_ip()) as elsewhere:
        assert (await login(elsewhere, account.username)).status_code == 200


async def test_wallet_login_failures_share_the_lockout(app: FastAPI) -> None:
    async with client_from(app, fresh_ip()) as c:
        account = await register_and_login(c)
        keypair, intruder = Keypair(), Keypair()
        address = str(keypair.pubkey())

        async def signed_by(signer: Keypair) -> dict[str, str]:
            r = await c.post("/auth/wallet/challenge", json={"address": address})
            message = r.json()["message"]
            return {"address": address, "signature": str(signer.sign_message(message.encode()))}

        r = await c.post("/me/wallets", json=await signed_by(keypair), headers=account.auth)
        assert r.status_code == 201, r.text
        for _ in range(3):
            r = await c.post("/auth/wallet/login", json=await signed_by(intruder))
            assert_problem(r, 401, "unauthorized")
        for _ in range(2):  # password failures count for the same account
            assert (await login(c, account.username, "wrong-password")).status_code == 401

        r = await c.post("/auth/wallet/login", json=await signed_by(keypair))
        assert_problem(r, 429, "rate_limited")
        assert_problem(await login(c, account.username), 429, "rate_limited")


async def test_redis_down_fails_open_for_requests_but_not_for_logins(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreachable Redis (a real client on a closed port) must not take the API down,
    and must not open the door to password guessing (an in-process lockout takes over)."""
    from redis.asyncio import Redis

    from ops.stack.base import free_port

    dead = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    monkeypatch.setattr(ratelimit, "get_redis", lambda: dead)
    monkeypatch.setenv("ECE_RATE_LIMIT_USER", "1")
    monkeypatch.setenv("ECE_RATE_LIMIT_LOGIN_ACCOUNT", "1")
    try:
        async with client_from(app, fresh_ip()) as c:
            account = await register_and_login(c)
            for _ in range(3):
                r = await c.get("/me", headers=account.auth)
                assert r.status_code == 200 and "RateLimit-Limit" not in r.headers
            assert (await login(c, account.username, "wrong-password")).status_code == 401
            assert_problem(await login(c, account.username, "wrong-password"), 429,
                           "rate_limited")
    finally:
        ratelimit._breaker.close()
        await dead.aclose()


async def test_rate_limits_can_be_switched_off(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECE_RATE_LIMIT_IP", "1")
    monkeypatch.setenv("ECE_RATE_LIMIT_ENABLED", "0")
    async with client_from(app, fresh_ip()) as c:
        for _ in range(3):
            r = await c.get("/cards")
            assert r.status_code == 200 and "RateLimit-Limit" not in r.headers


def test_limits_from_environment() -> None:
    assert ratelimit.RateLimits.from_env({}) == ratelimit.RateLimits()
    limits = ratelimit.RateLimits.from_env(
        {
            "ECE_RATE_LIMIT_USER": "100000",
            "ECE_RATE_LIMIT_IP": "200000",
            "ECE_RATE_LIMIT_ENABLED": "false",
        }
    )
    assert (limits.user, limits.ip, limits.enabled) == (100000, 200000, False)
    assert limits.login_account == 5 and limits.login_window_seconds == 900
