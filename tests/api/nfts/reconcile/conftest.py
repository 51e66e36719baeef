"""Reconciliation fixtures: the real local Solana node, a funded payer, a private database.

Each test reconciles a database of its own (copied from a migrated template), so
the NFTs other tests mint in the shared database never enter its verdicts; the
chain and the broker are the session's.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from solana.rpc.async_api import AsyncClient
from solders.keypair import Keypair
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ece.db_roles import with_database
from ece.settings import Settings, get_settings
from ops.stack.supervisor import Platform

SOL = 1_000_000_000


@pytest.fixture(scope="session")
def chain_settings(platform: Platform) -> Settings:
    platform.require("postgres", "migrate", "broker", "solana")
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture(scope="module")
def template_db(chain_settings: Settings) -> Iterator[str]:
    from api.migrations.runner import upgrade_to_head

    name = f"ece_recon_tpl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(chain_settings.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    upgrade_to_head(with_database(chain_settings.database_url, name))
    yield name
    with psycopg.connect(chain_settings.database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_url(chain_settings: Settings, template_db: str) -> Iterator[str]:
    """A fresh migrated database for this test only."""
    name = f"ece_recon_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(chain_settings.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield with_database(chain_settings.database_url, name)
    with psycopg.connect(chain_settings.database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    from api.migrations.runner import sync_url

    eng = create_async_engine(sync_url(db_url), pool_size=2)
    yield eng
    await eng.dispose()


@pytest.fixture
async def rpc(chain_settings: Settings) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(chain_settings.solana_rpc_url, timeout=10) as client:
        yield client


@pytest.fixture
async def payer(rpc: AsyncClient) -> Keypair:
    """A fresh fee payer with 100 SOL (requestAirdrop lands at once on the local node)."""
    kp = Keypair()
    await rpc.request_airdrop(kp.pubkey(), 100 * SOL)
    return kp
