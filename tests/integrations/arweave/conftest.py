"""Fixtures for the Arweave tests: the real arlocal from the session platform."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from api.integrations.arweave import ArweaveClient, Wallet
from ops.stack.supervisor import Platform

FUNDS = 10**15  # winston: plenty for thousands of small uploads at arlocal's price


@pytest.fixture(scope="session")
def arweave_url(platform: Platform) -> str:
    platform.require("arweave")
    return platform.part("arweave").url


@pytest.fixture
async def client(arweave_url: str) -> AsyncIterator[ArweaveClient]:
    async with ArweaveClient(arweave_url) as c:
        yield c


@pytest.fixture(scope="session")
def wallet() -> Wallet:
    return Wallet.generate()


@pytest.fixture
async def funded(client: ArweaveClient, wallet: Wallet) -> Wallet:
    await client.ensure_funded(wallet, FUNDS)
    return wallet
