"""Abuse controls of issue #12: trusted proxies, body cap, per-(account, IP) lockout,
the in-process fallback when Redis is down, and the cached readiness probe."""

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from fastapi import FastAPI

from api.web import lockout, ratelimit
from ece.settings import Settings, get_settings
from ops.stack.base import free_port
from tests.support.apitest import PASSWORD, Db, assert_problem, register_and_login, unique

_addresses = itertools.count(1)


def fresh_ip() -> str:
    return f"198.51.100.{100 + next(_addresses)}"


@asynccontextmanager
async def client_from(app: FastAPI, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as c:
        yield c


async def login(c: httpx.AsyncClient, who: str, password: str = PASSWORD) -> httpx.Response:
    return await c.post("/auth/login", json={"login": who, "password": password})


# --- X-Forwarded-For only from ECE_TRUSTED_PROXIES (real uvicorn, the stack's options) ---


@asynccontextmanager
async def uvicorn_serving(app: FastAPI, trusted: str) -> AsyncIterator[str]:
    """The shared app under uvicorn with the proxy options ``ops.stack.api`` starts it with."""
    from ops.stack.api import proxy_options

    settings = get_settings().model_copy(update={"trusted_proxies": trusted})
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                            log_level="warning", **proxy_options(settings))
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/api/v1"
    finally:
        server.should_exit = True
        await task


def from_address(source: str, base_url: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    return httpx.AsyncClient(transport=transport, base_url=base_url, timeout=30)


async def register_via(c: httpx.AsyncClient, forwarded_for: str) -> str:
    name = unique("xff")
    r = await c.post(
        "/auth/register",
        json={"email": f"{name}@example.com", "username": name, "password": PASSWORD},
        headers={"X-Forwarded-For": forwarded_for},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def audit_ip(db: Db, user_id: str) -> str:
    return str(db.value(
        "SELECT ip FROM audit_events WHERE action = 'user.register' AND entity_id = %s", user_id
    ))


def bucket_exists(api_settings: Settings, ip: str) -> bool:
    with redis.Redis.from_url(api_settings.redis_url) as client:
        return bool(client.exists(f"{ratelimit.KEY_PREFIX}ip:{ip}"))


async def test_forged_forwarded_for_is_ignored_by_default(
    app: FastAPI, db: Db, api_settings: Settings
) -> None:
    async with uvicorn_serving(app, trusted="") as url, from_address("127.0.0.7", url) as c:
        user_id = await register_via(c, "203.0.113.250")
    assert audit_ip(db, user_id) == "127.0.0.7"
    assert bucket_exists(api_settings, "127.0.0.7")
    assert not bucket_exists(api_settings, "203.0.113.250")


async def test_only_a_listed_proxy_sets_the_client_address(
    app: FastAPI, db: Db, api_settings: Settings
) -> None:
    async with uvicorn_serving(app, trusted="127.0.0.8, 10.0.0.0/8") as url:
        async with from_address("127.0.0.8", url) as proxy:
            honoured = await register_via(proxy, "203.0.113.251")
        async with from_address("127.0.0.9", url) as stranger:
            forged = await register_via(stranger, "203.0.113.252")
    assert audit_ip(db, honoured) == "203.0.113.251"
    assert bucket_exists(api_settings, "203.0.113.251")
    assert audit_ip(db, forged) == "127.0.0.9"
    assert not bucket_exists(api_settings, "203.0.113.252")


# --- request body cap ----------------------------------------------------------------


MiB = 1024 * 1024


async def test_declared_body_over_1_mib_is_refused_at_once(client: httpx.AsyncClient) -> None:
    r = await client.post("/auth/register", content=b"x" * (MiB + 1),
                          headers={"Content-Type": "application/json"})
    body = assert_problem(r, 413, "payload_too_large")
    assert str(MiB) in body["detail"]
    # At the cap it is an ordinary (here: invalid) body.
    r = await client.post("/auth/register", content=b"x" * MiB,
                          headers={"Content-Type": "application/json"})
    assert_problem(r, 422, "validation_error")


async def test_chunked_body_is_refused_while_streaming(
    client: httpx.AsyncClient, db: Db
) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        chunk = b'{"email": "' + b"a" * (64 * 1024)
        while True:
            sent += len(chunk)
            yield chunk

    before = db.value("SELECT count(*) FROM users")
    r = await client.post("/auth/register", content=endless(),
                          headers={"Content-Type": "application/json"})
    assert_problem(r, 413, "payload_too_large")
    assert MiB < sent <= MiB + 128 * 1024
    assert db.value("SELECT count(*) FROM users") == before


# --- failed logins per (account, client IP), with a per-account ceiling ---------------


async def test_a_stranger_cannot_lock_out_the_owner(app: FastAPI, db: Db) -> None:
    async with client_from(app, fresh_ip()) as c:
        owner = await register_and_login(c)
    async with client_from(app, fresh_ip()) as stranger:
        for _ in range(5):
            assert_problem(await login(stranger, owner.username, "wrong-password"), 401,
                           "unauthorized")
        # The stranger's address is locked out of this account, even with the password.
        r = await login(stranger, owner.email)
        body = assert_problem(r, 429, "rate_limited")
        assert "this account from this client address" in body["detail"]
        assert 800 <= int(r.headers["Retry-After"]) <= 900
        assert r.headers["RateLimit-Limit"] == "5"
    # The owner, from their own address, signs in.
    async with client_from(app, fresh_ip()) as home:
        assert (await login(home, owner.username)).status_code == 200


async def test_the_account_total_locks_a_guesser_rotating_addresses(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with client_from(app, fresh_ip()) as c:
        owner = await register_and_login(c)
    monkeypatch.setenv("ECE_RATE_LIMIT_LOGIN_ACCOUNT_TOTAL", "4")
    for _ in range(4):
        async with client_from(app, fresh_ip()) as bot:
            assert (await login(bot, owner.username, "wrong-password")).status_code == 401
    async with client_from(app, fresh_ip()) as home:
        body = assert_problem(await login(home, owner.username), 429, "rate_limited")
    assert body["detail"] == "too many failed logins for this account; retry later"


async def test_refused_attempts_do_not_count(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hammering a locked (account, address) pair does not raise the account's total."""
    async with client_from(app, fresh_ip()) as c:
        owner = await register_and_login(c)
    monkeypatch.setenv("ECE_RATE_LIMIT_LOGIN_ACCOUNT", "2")
    monkeypatch.setenv("ECE_RATE_LIMIT_LOGIN_ACCOUNT_TOTAL", "4")
    async with client_from(app, fresh_ip()) as stranger:
        statuses = [(await login(stranger, owner.username, "x")).status_code for _ in range(8)]
    assert statuses == [401, 401] + [429] * 6
    async with client_from(app, fresh_ip()) as home:  # total 2 of 4: the owner still gets in
        assert (await login(home, owner.username)).status_code == 200


async def test_lockout_counts_in_memory_while_redis_is_down(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real client on a closed port: logins stay limited (never fail open)."""
    from redis.asyncio import Redis

    dead = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    async with client_from(app, fresh_ip()) as c:
        account = await register_and_login(c)
        monkeypatch.setattr(ratelimit, "get_redis", lambda: dead)
        monkeypatch.setenv("ECE_RATE_LIMIT_LOGIN_ACCOUNT", "2")
        try:
            for _ in range(2):
                assert (await login(c, account.username, "wrong-password")).status_code == 401
            r = await login(c, account.username)
            assert_problem(r, 429, "rate_limited")
            assert int(r.headers["Retry-After"]) >= 800
            # Another address is its own pair, and the owner's success clears it.
            async with client_from(app, fresh_ip()) as other:
                assert (await login(other, account.username, "wrong-password")).status_code == 401
                assert (await login(other, account.username)).status_code == 200
        finally:
            ratelimit._breaker.close()
            await dead.aclose()


def test_local_counters_refuse_when_full() -> None:
    counters = lockout.LocalCounters(max_keys=2)
    assert not any(b.exceeded for b in counters.hit([("a", 5, 60), ("b", 5, 60)]))
    assert all(b.exceeded for b in counters.hit([("c", 5, 60)]))  # no room: refused
    assert [b.count for b in counters.hit([("a", 5, 60)])] == [2]  # known keys still count
    counters.give_back(["a"], reset="b")
    assert counters.windows["a"][0] == 1 and "b" not in counters.windows


# --- /readyz: cached a second, one admin client, its own executor ---------------------


async def test_readyz_is_computed_once_a_second(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import api.core.health as health

    calls = 0

    async def counted() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)

    fake = get_settings().model_copy()  # a settings object of its own: a fresh cache
    monkeypatch.setattr(health, "get_settings", lambda: fake)
    monkeypatch.setattr(health, "CHECKS", {"database": counted})
    answers = await asyncio.gather(*(client.get("/readyz") for _ in range(10)))
    assert {r.status_code for r in answers} == {200}
    assert calls == 1
    assert (await client.get("/readyz")).status_code == 200 and calls == 1
    await asyncio.sleep(health.CACHE_SECONDS + 0.05)
    assert (await client.get("/readyz")).status_code == 200 and calls == 2


async def test_readyz_broker_check_shares_one_admin_client(platform: Any) -> None:
    import threading

    import api.core.health as health

    platform.require("broker")
    seen: list[str] = []
    real = health._kafka_sync

    def spy() -> None:
        seen.append(threading.current_thread().name)
        real()

    health._kafka_sync = spy  # type: ignore[assignment]
    try:
        await health._kafka()
        first = health._kafka_admin()
        await health._kafka()
    finally:
        health._kafka_sync = real  # type: ignore[assignment]
    assert health._kafka_admin() is first
    assert all(name.startswith("readyz") for name in seen), seen
