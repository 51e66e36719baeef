"""API test fixtures on the shared ``platform`` (real PostgreSQL + Redis, migrated).

A pytest plugin (``tests/conftest.py`` loads it), so every test folder can use
``client``, ``db``, ``user`` and ``admin`` without copying them.

The app runs in-process behind ``httpx.ASGITransport``; every test talks HTTP to it
and checks the database directly when it must prove that nothing was written.
"""

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ece.settings import Settings, get_settings
from tests.support.apitest import PASSWORD, Account, Db, register_and_login, relogin, unique


@pytest.fixture(scope="session")
def api_settings(platform: Any) -> Settings:
    platform.require("postgres", "redis", "migrate")
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture(scope="session")
async def app(api_settings: Settings) -> AsyncIterator[FastAPI]:
    from api.core.cache import close_redis
    from api.core.db import dispose_engine
    from api.web.app import create_app

    await dispose_engine()
    await close_redis()
    yield create_app()
    await close_redis()
    await dispose_engine()


@pytest.fixture(scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as c:
        yield c


@pytest.fixture(scope="session")
def db(api_settings: Settings) -> Db:
    return Db(api_settings.database_url)


class FreshAccount:
    """A session-scoped account whose access token is renewed before it expires: tokens
    live ``access_token_ttl_seconds`` (15 min), a test session far longer, and a test
    late in the session must not fail on a token an earlier one was handed."""

    def __init__(self, account: Account, ttl_seconds: int) -> None:
        self.account, self.renew_after = account, max(ttl_seconds - 180, ttl_seconds / 2)
        self.issued = time.monotonic()

    async def current(self, client: httpx.AsyncClient) -> Account:
        if time.monotonic() - self.issued > self.renew_after:
            self.account, self.issued = await relogin(client, self.account), time.monotonic()
        return self.account


@pytest.fixture(scope="session")
async def session_user(client: httpx.AsyncClient, api_settings: Settings) -> FreshAccount:
    return FreshAccount(await register_and_login(client), api_settings.access_token_ttl_seconds)


@pytest.fixture
async def user(client: httpx.AsyncClient, session_user: FreshAccount) -> Account:
    return await session_user.current(client)


@pytest.fixture
async def admin(client: httpx.AsyncClient, session_admin: FreshAccount) -> Account:
    return await session_admin.current(client)


@pytest.fixture(scope="session")
async def session_admin(client: httpx.AsyncClient, app: FastAPI,
                        api_settings: Settings) -> FreshAccount:
    """An admin made the way operators make one: through ``create_admin`` (the CLI path)."""
    from api.audit.chain import AuditContext
    from api.core.db import get_sessionmaker
    from api.users.service import create_admin

    username = unique("admin")
    async with get_sessionmaker()() as session:
        created = await create_admin(
            session,
            AuditContext(ip="test"),
            email=f"{username}@example.com",
            username=username,
            password=PASSWORD,
        )
    r = await client.post("/auth/login", json={"login": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    return FreshAccount(Account(
        str(created.id),
        username,
        f"{username}@example.com",
        body["access_token"],
        body["refresh_token"],
    ), api_settings.access_token_ttl_seconds)


@pytest.fixture(scope="session")
def live_url(platform: Any, api_settings: Settings) -> str:
    """The API under real uvicorn (the stack's way of running it), for racing requests."""
    platform.require("api")
    return str(platform.part("api").url)


@pytest.fixture(scope="session")
def push_service(api_settings: Settings) -> Iterator[Any]:
    """A real Web Push service (npm web-push-testing) on a free loopback port."""
    from tests.support.pushservice import PushService

    service = PushService(api_settings.logs_dir / "web-push-testing.log").start()
    yield service
    service.stop()
