"""NFT test fixtures: the real stack (Postgres, Redis, broker, CDC, local Solana node,
arlocal, uvicorn) from the session ``platform``, HTTP clients and accounts.

The REST API is the real uvicorn process; workers run either in this event loop
(``workers`` fixture, per module) or as real processes (``nfttest.spawn_worker``)
when a test kills them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ece.settings import Settings, get_settings
from tests.support.apitest import PASSWORD, Account, Db, register_and_login, unique

API_PARTS = ("postgres", "redis", "migrate", "api")
CHAIN_PARTS = ("broker", "cdc", "solana", "arweave")


@pytest.fixture(scope="session")
def nft_settings(platform: Any) -> Settings:
    """Enough for the REST tests; worker tests also take ``stack``."""
    platform.require(*API_PARTS)
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture(scope="session")
def stack(platform: Any, nft_settings: Settings) -> Any:
    """Everything the workers talk to: broker + CDC, the local chain, arlocal."""
    platform.require(*CHAIN_PARTS)
    return platform


@pytest.fixture(scope="session")
def api_url(platform: Any, nft_settings: Settings) -> str:
    return str(platform.part("api").url)


@pytest.fixture(scope="session")
async def http(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=api_url, timeout=30, limits=limits) as client:
        yield client


@pytest.fixture(scope="session")
def db(nft_settings: Settings) -> Db:
    return Db(nft_settings.database_url)


@pytest.fixture(scope="session")
async def admin(http: httpx.AsyncClient, nft_settings: Settings) -> Account:
    """An admin made the operators' way (``create_admin``), to issue cards."""
    from api.audit.chain import AuditContext
    from api.core.db import dispose_engine, get_sessionmaker
    from api.users.service import create_admin

    username = unique("nftadmin")
    async with get_sessionmaker()() as session:
        created = await create_admin(
            session, AuditContext(ip="test"), email=f"{username}@example.com",
            username=username, password=PASSWORD,
        )
    await dispose_engine()
    r = await http.post("/auth/login", json={"login": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    return Account(str(created.id), username, f"{username}@example.com",
                   body["access_token"], body["refresh_token"])


@pytest.fixture
async def alice(http: httpx.AsyncClient) -> Account:
    return await register_and_login(http, unique("alice"))


@pytest.fixture
async def bob(http: httpx.AsyncClient) -> Account:
    return await register_and_login(http, unique("bob"))
