"""kill -9 of the workers at their worst moments, then a restart: one upload, one mint,
one transfer. The workers run as real processes that SIGKILL themselves at a named
step (the documented test hook ``ECE_TEST_CRASH_AT``, see ``api.nfts.runtime``)."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from nfttest import (
    WorkerProcess,
    arweave_uploads,
    custody_address,
    give_card,
    make_card,
    request_mint,
    running_workers,
    token_amount,
    transaction_count,
    wait_for,
    wait_status,
)

from ece.settings import Settings
from tests.support.apitest import Account, Db

KILLED = -signal.SIGKILL


@pytest.fixture(scope="module", autouse=True)
async def settled(stack: Any, nft_settings: Settings, db: Db) -> AsyncIterator[None]:
    """Let normal workers finish whatever earlier modules left behind, so the chain's
    transaction count below moves only because of the NFT under test; pause the
    platform's own ``chain-workers`` (if a test started it) so that only the process
    under test can pick up our NFTs."""
    shared = stack.parts.get("chain-workers")
    paused = shared is not None and shared in stack.started and shared.process is not None
    if paused:
        shared.stop()

    async def idle() -> bool:
        active = db.value("SELECT count(*) FROM nfts WHERE status IN "
                          "('pending', 'uploading', 'minting')")
        open_tx = db.value("SELECT count(*) FROM nft_transactions WHERE status IN "
                           "('pending', 'submitted')")
        return active == 0 and open_tx == 0

    try:
        async with running_workers(nft_settings, "mint_saga", "chain_transfers"):
            await wait_for(idle, 90, "earlier NFTs to settle")
        yield
    finally:
        if paused:
            shared.start()


async def crash_then_finish(
    settings: Settings, worker: str, step: str, check_crashed: Any, finished: Any,
) -> Any:
    crashing = WorkerProcess(settings, worker, crash_at=step)
    try:
        assert await crashing.wait_exit(60) == KILLED, crashing.log()
    finally:
        crashing.stop()
    await check_crashed()
    again = WorkerProcess(settings, worker)
    try:
        return await finished()
    finally:
        again.stop()


async def test_killed_after_upload_uploads_once(
    stack: Any, http: httpx.AsyncClient, admin: Account, alice: Account, db: Db,
    nft_settings: Settings,
) -> None:
    card_id = await make_card(http, admin, alice)
    nft = await request_mint(http, alice, card_id)
    gateway = nft_settings.arweave_url

    async def crashed() -> None:
        row = db.rows("SELECT status, metadata_uri FROM nfts WHERE id = %s", nft["id"])[0]
        assert row[0] == "uploading" and row[1] is not None  # posted, saga not moved on
        assert await arweave_uploads(gateway, nft["id"]) == [row[1].rsplit("/", 1)[-1]]

    async def finished() -> dict[str, Any]:
        return await wait_status(http, nft["id"], "minted", timeout=60)

    minted = await crash_then_finish(nft_settings, "mint_saga", f"after_upload:{nft['id']}",
                                     crashed, finished)
    uploads = await arweave_uploads(gateway, nft["id"])
    assert uploads == [minted["metadata_uri"].rsplit("/", 1)[-1]]
    owner = await custody_address(http, alice)
    assert await token_amount(nft_settings.solana_rpc_url, owner, minted["mint_address"]) == 1


async def test_killed_after_mint_send_mints_once(
    stack: Any, http: httpx.AsyncClient, admin: Account, alice: Account, db: Db,
    nft_settings: Settings,
) -> None:
    card_id = await make_card(http, admin, alice)
    nft = await request_mint(http, alice, card_id)
    rpc_url = nft_settings.solana_rpc_url
    seen: dict[str, Any] = {}

    async def crashed() -> None:
        status = db.value("SELECT status FROM nfts WHERE id = %s", nft["id"])
        tx = db.rows("SELECT status, signature FROM nft_transactions WHERE nft_id = %s "
                     "AND kind = 'mint'", nft["id"])
        assert status == "minting" and tx[0][0] == "submitted" and tx[0][1], (status, tx)
        seen["signature"] = tx[0][1]
        seen["transactions"] = await transaction_count(rpc_url)

    async def finished() -> dict[str, Any]:
        return await wait_status(http, nft["id"], "minted", timeout=60)

    minted = await crash_then_finish(nft_settings, "mint_saga", f"after_mint_send:{nft['id']}",
                                     crashed, finished)
    assert minted["tx_signature"] == seen["signature"]
    assert await transaction_count(rpc_url) == seen["transactions"], "no second mint was sent"
    owner = await custody_address(http, alice)
    assert await token_amount(rpc_url, owner, minted["mint_address"]) == 1
    assert len(await arweave_uploads(nft_settings.arweave_url, nft["id"])) == 1
    rows = db.rows("SELECT status FROM nft_transactions WHERE nft_id = %s", nft["id"])
    assert rows == [("confirmed",)]


async def test_killed_after_transfer_send_transfers_once(
    stack: Any, http: httpx.AsyncClient, admin: Account, alice: Account, bob: Account, db: Db,
    nft_settings: Settings,
) -> None:
    card_id = await make_card(http, admin, alice)
    nft = await request_mint(http, alice, card_id)
    async with running_workers(nft_settings, "mint_saga"):
        minted = await wait_status(http, nft["id"], "minted", timeout=60)
    rpc_url, mint = nft_settings.solana_rpc_url, minted["mint_address"]
    buyer = await custody_address(http, bob)
    history_id = await give_card(card_id, bob.id, "sale")
    seen: dict[str, Any] = {}

    async def crashed() -> None:
        rows = db.rows("SELECT status, signature FROM nft_transactions "
                       "WHERE card_history_id = %s", history_id)
        assert len(rows) == 1 and rows[0][0] == "submitted" and rows[0][1], rows
        assert await token_amount(rpc_url, buyer, mint) == 1  # moved, not yet recorded
        seen["signature"] = rows[0][1]
        seen["transactions"] = await transaction_count(rpc_url)

    async def finished() -> list[tuple[Any, ...]]:
        async def confirmed() -> list[tuple[Any, ...]] | None:
            rows = db.rows("SELECT status, signature FROM nft_transactions "
                           "WHERE card_history_id = %s", history_id)
            return rows if rows and rows[0][0] == "confirmed" else None

        return await wait_for(confirmed, 60, "the transfer to be confirmed")

    rows = await crash_then_finish(nft_settings, "chain_transfers",
                                   f"after_transfer_send:{card_id}", crashed, finished)
    assert rows == [("confirmed", seen["signature"])]
    assert await transaction_count(rpc_url) == seen["transactions"], "no second transfer"
    body = (await http.get(f"/nfts/{nft['id']}")).json()
    assert body["owner_address"] == buyer
    assert await token_amount(rpc_url, buyer, mint) == 1


async def test_killed_mid_bundle_uploads_each_once(
    stack: Any, http: httpx.AsyncClient, admin: Account, alice: Account, db: Db,
    nft_settings: Settings,
) -> None:
    """Killed after a batch recorded its data item URIs, before their bundle was posted:
    the restarted worker replaces the never-posted items, so each NFT ends with exactly
    one upload on the gateway, and that one is the URI it records and serves."""
    cards = [await make_card(http, admin, alice, name=f"Bundle card {i}") for i in range(3)]
    nfts = [await request_mint(http, alice, card_id) for card_id in cards]
    target = nfts[1]["id"]
    gateway = nft_settings.arweave_url
    seen: dict[str, str] = {}

    async def crashed() -> None:
        status, uri = db.rows("SELECT status, metadata_uri FROM nfts WHERE id = %s", target)[0]
        assert status == "uploading" and uri is not None, (status, uri)  # recorded, not posted
        assert await arweave_uploads(gateway, target) == []
        async with httpx.AsyncClient(timeout=10) as plain:
            assert (await plain.get(uri)).status_code == 404
        seen["uri"] = uri

    async def finished() -> list[dict[str, Any]]:
        return [await wait_status(http, n["id"], "minted", timeout=90) for n in nfts]

    minted = await crash_then_finish(nft_settings, "mint_saga", f"mid_bundle:{target}",
                                     crashed, finished)
    owner = await custody_address(http, alice)
    async with httpx.AsyncClient(timeout=10) as plain:
        for card_id, nft in zip(cards, minted, strict=True):
            item = nft["metadata_uri"].rsplit("/", 1)[-1]
            assert await arweave_uploads(gateway, nft["id"]) == [item]
            assert (await plain.get(nft["metadata_uri"])).json()["card_id"] == card_id
            assert await token_amount(nft_settings.solana_rpc_url, owner,
                                      nft["mint_address"]) == 1
    assert next(n for n in minted if n["id"] == target)["metadata_uri"] != seen["uri"]
