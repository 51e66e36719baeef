"""Helpers for the NFT tests (imported as ``nfttest``): cards, ownership changes, polling,
plain JSON-RPC and Arweave GraphQL reads, and workers in-process or as processes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import struct
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx

from ece.settings import Settings
from tests.support.apitest import Account, unique
from tests.support.processes import TestProcess

T = TypeVar("T")


async def wait_for(
    check: Callable[[], Awaitable[T | None]], timeout: float, what: str, every: float = 0.2  # noqa: ASYNC109
) -> T:
    """Poll ``check`` (async, so in-process workers keep running) until truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)


async def make_card(http: httpx.AsyncClient, admin: Account, owner: Account, **extra: Any) -> str:
    body = {"name": extra.pop("name", "Charizard"), "set_name": "Base", "number": unique("n")[:10],
            "rarity": "legendary", "attributes": {"hp": 120, "holo": True}, "owner_id": owner.id,
            **extra}
    r = await http.post("/cards", json=body, headers=admin.auth)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def custody_address(http: httpx.AsyncClient, account: Account) -> str:
    r = await http.get("/me", headers=account.auth)
    assert r.status_code == 200, r.text
    return str(r.json()["custody_address"])


async def request_mint(http: httpx.AsyncClient, account: Account, card_id: str) -> dict[str, Any]:
    r = await http.post(f"/cards/{card_id}/nft", headers=account.auth)
    assert r.status_code == 202, r.text
    return dict(r.json())


async def wait_status(
    http: httpx.AsyncClient, nft_id: str, status: str, timeout: float = 60  # noqa: ASYNC109
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        r = await http.get(f"/nfts/{nft_id}")
        assert r.status_code == 200, r.text
        body = dict(r.json())
        if body["status"] == "failed" and status != "failed":
            raise AssertionError(f"NFT failed: {body['error']}")
        return body if body["status"] == status else None

    return await wait_for(check, timeout, f"NFT {nft_id} to be {status}")


async def sell(
    http: httpx.AsyncClient, admin: Account, seller: Account, buyer: Account, card_id: str,
    price_cents: int = 5_000,
) -> dict[str, Any]:
    """A real marketplace sale: the seller lists, the buyer is funded and buys (201 sale)."""
    r = await http.post("/admin/deposits", headers=admin.auth, json={
        "user_id": buyer.id, "amount_cents": price_cents, "reference": unique("dep")})
    assert r.status_code == 201, r.text
    r = await http.post("/listings", headers=seller.auth,
                        json={"card_id": card_id, "price_cents": price_cents})
    assert r.status_code == 201, r.text
    r = await http.post(f"/listings/{r.json()['id']}/purchase", headers=buyer.auth)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def give_card(card_id: str, to_user_id: str, reason: str = "sale") -> str:
    """Change the owner the way sales/trades/auctions do: ``transfer_card`` in one
    service transaction (the marketplace endpoints call the same function)."""
    from api.cards.models import Card  # noqa: F401 - mapper registry
    from api.cards.ownership import lock_cards, transfer_card
    from api.core.db import get_sessionmaker

    async with get_sessionmaker()() as session:
        (card,) = await lock_cards(session, [uuid.UUID(card_id)])
        history = await transfer_card(session, card, uuid.UUID(to_user_id), reason,
                                      uuid.uuid4(), 1000, "sale")
        history_id = str(history.id)
        await session.commit()
    return history_id


# --- plain reads of the chain and the gateway ------------------------------------------


async def rpc(url: str, method: str, *params: Any) -> Any:
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                         "params": list(params)})
    r.raise_for_status()
    body = r.json()
    assert "error" not in body, body
    return body["result"]


async def token_amount(url: str, owner: str, mint: str) -> int:
    """What ``owner`` holds of ``mint``, via getTokenAccountsByOwner (raw JSON-RPC)."""
    accounts = (await rpc(url, "getTokenAccountsByOwner", owner, {"mint": mint},
                          {"encoding": "base64"}))["value"]
    total = 0
    for account in accounts:
        data = base64.b64decode(account["account"]["data"][0])
        assert data[0:32] == _b58(mint)
        total += struct.unpack_from("<Q", data, 64)[0]
    return total


def _b58(address: str) -> bytes:
    from solders.pubkey import Pubkey

    return bytes(Pubkey.from_string(address))


async def mint_account(url: str, mint: str) -> tuple[int, int, bool, bool]:
    """(supply, decimals, has mint authority, initialized) from the raw mint account."""
    value = (await rpc(url, "getAccountInfo", mint, {"encoding": "base64"}))["value"]
    assert value is not None, f"mint {mint} not found"
    data = base64.b64decode(value["data"][0])
    tag, supply, decimals, initialized = struct.unpack_from("<I32xQB?", data, 0)
    return supply, decimals, tag == 1, initialized


async def transaction_count(url: str) -> int:
    return int(await rpc(url, "getTransactionCount"))


async def arweave_uploads(gateway: str, nft_id: str) -> list[str]:
    """Transaction ids the gateway holds for this NFT (GraphQL on the ECE-NFT-Id tag)."""
    tags = '[{name: "ECE-NFT-Id", values: ["' + nft_id + '"]}]'
    query = "query { transactions(tags: " + tags + ") { edges { node { id } } } }"
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.post(f"{gateway}/graphql", json={"query": query})
    r.raise_for_status()
    return [edge["node"]["id"] for edge in r.json()["data"]["transactions"]["edges"]]


# --- workers ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_workers(settings: Settings, *names: str) -> AsyncIterator[None]:
    """The named workers (``mint_saga``, ``chain_transfers``) in this event loop."""
    from api.workers import chain_transfers, mint_saga

    modules = {"mint_saga": mint_saga, "chain_transfers": chain_transfers}
    stop = asyncio.Event()
    tasks = [asyncio.create_task(modules[n].run(settings, stop), name=n) for n in names]
    try:
        await asyncio.sleep(0.5)
        for task in tasks:
            if task.done():
                task.result()  # a worker that died at start fails the test with its error
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)


class WorkerProcess(TestProcess):
    """``python -m api.workers.<name>`` as a real process (to be SIGKILLed)."""

    def __init__(self, settings: Settings, name: str, crash_at: str | None = None) -> None:
        super().__init__(settings, f"api.workers.{name}", label=name, crash_at=crash_at)


def execute(db: Any, sql: str, *params: Any) -> None:
    """A write through the side door (``Db.rows`` expects rows back)."""
    import psycopg

    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute(sql, params)
