"""Fixtures for the chain tests: the real local node, an AsyncClient and a funded payer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from solana.rpc.async_api import AsyncClient
from solders.keypair import Keypair

from ops.stack.supervisor import Platform

SOL = 1_000_000_000


@pytest.fixture(scope="session")
def solana_url(platform: Platform) -> str:
    platform.require("solana")
    return platform.settings.solana_rpc_url


@pytest.fixture
async def client(solana_url: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(solana_url, timeout=10) as c:
        yield c


@pytest.fixture
async def payer(client: AsyncClient) -> Keypair:
    """A fresh fee payer with 10 SOL (requestAirdrop lands at once on the local node)."""
    kp = Keypair()
    await client.request_airdrop(kp.pubkey(), 10 * SOL)
    return kp
