"""The mint saga end to end: REST request -> Arweave metadata -> Token-2022 mint on the
local chain, read back through the chain's own JSON-RPC and the gateway's HTTP API;
an RPC outage that the saga waits out; a permanent failure recorded and dead-lettered.
The mint saga runs in this event loop (the ``saga`` fixture) against the real parts."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer
from nfttest import (
    arweave_uploads,
    custody_address,
    execute,
    make_card,
    mint_account,
    request_mint,
    running_workers,
    token_amount,
    wait_for,
    wait_status,
)

from api.integrations.arweave.ans104 import parse_bundle
from ece.contracts.topics import DLQ
from ece.settings import Settings
from tests.support.apitest import Account, Db
from tests.support.imagetest import png


@pytest.fixture(scope="module")
async def saga(stack: Any, nft_settings: Settings) -> AsyncIterator[None]:
    async with running_workers(nft_settings, "mint_saga"):
        yield


async def test_owner_mints_and_sees_it_on_chain_and_gateway(
    saga: None, http: httpx.AsyncClient, admin: Account, alice: Account, db: Db,
    nft_settings: Settings,
) -> None:
    card_id = await make_card(http, admin, alice, name="Blue-Eyes White Dragon")
    requested = await request_mint(http, alice, card_id)
    nft = await wait_status(http, requested["id"], "minted")
    address = await custody_address(http, alice)
    assert nft["owner_address"] == address and nft["error"] is None
    assert nft["mint_address"] and nft["tx_signature"] and nft["metadata_uri"]
    assert (await http.get(f"/cards/{card_id}/nft")).json() == nft

    rpc_url = nft_settings.solana_rpc_url
    assert await token_amount(rpc_url, address, nft["mint_address"]) == 1
    supply, decimals, has_mint_authority, initialized = await mint_account(
        rpc_url, nft["mint_address"])
    assert (supply, decimals, has_mint_authority, initialized) == (1, 0, False, True)
    async with httpx.AsyncClient(timeout=10) as plain:
        statuses = (await plain.post(rpc_url, json={
            "jsonrpc": "2.0", "id": 1, "method": "getSignatureStatuses",
            "params": [[nft["tx_signature"]]]})).json()["result"]["value"]
        assert statuses[0] is not None and statuses[0]["err"] is None
        document = (await plain.get(nft["metadata_uri"])).json()
    assert document["name"] == "Blue-Eyes White Dragon" and document["symbol"] == "ECE"
    assert document["card_id"] == card_id
    assert {"trait_type": "rarity", "value": "legendary"} in document["attributes"]
    assert {"trait_type": "hp", "value": 120} in document["attributes"]
    assert {"description", "image"} <= document.keys()
    tx_id = nft["metadata_uri"].rsplit("/", 1)[-1]
    assert await arweave_uploads(nft_settings.arweave_url, nft["id"]) == [tx_id]

    rows = db.rows("SELECT kind, status, to_address, signature FROM nft_transactions "
                   "WHERE nft_id = %s", nft["id"])
    assert rows == [("mint", "confirmed", address, nft["tx_signature"])]


async def test_card_image_is_published_with_the_metadata(
    saga: None, http: httpx.AsyncClient, admin: Account, alice: Account, nft_settings: Settings,
) -> None:
    """The metadata's ``image`` is the card image on Arweave (decrypted from the store once)."""
    card_id = await make_card(http, admin, alice)
    image = png(16, 16, seed=5)
    r = await http.put(f"/cards/{card_id}/image", content=image,
                       headers={**alice.auth, "Content-Type": "image/png"})
    assert r.status_code == 204, r.text
    nft = await wait_status(http, (await request_mint(http, alice, card_id))["id"], "minted")
    async with httpx.AsyncClient(timeout=10) as plain:
        document = (await plain.get(nft["metadata_uri"])).json()
        assert document["image"].startswith(nft_settings.arweave_url)
        served = await plain.get(document["image"])
    assert served.content == image
    assert served.headers["content-type"].startswith("image/png")
    assert len(await arweave_uploads(nft_settings.arweave_url, nft["id"])) == 2  # image + JSON


async def test_rpc_outage_is_waited_out(
    saga: None, stack: Any, http: httpx.AsyncClient, admin: Account, alice: Account,
    nft_settings: Settings,
) -> None:
    """Solana down: the request is still 202, the saga retries, minting completes after."""
    card_id = await make_card(http, admin, alice)
    solana = stack.part("solana")
    solana.stop()
    try:
        nft = await request_mint(http, alice, card_id)
        await wait_status(http, nft["id"], "minting", timeout=30)  # uploaded, chain unreachable
        await asyncio.sleep(3)
        body = (await http.get(f"/nfts/{nft['id']}")).json()
        assert body["status"] == "minting", body  # waiting, not failed
        assert (await http.get("/healthz")).status_code == 200
    finally:
        solana.start()
    started = time.monotonic()
    minted = await wait_status(http, nft["id"], "minted", timeout=60)
    print(f"minted {time.monotonic() - started:.1f}s after the node came back")
    address = await custody_address(http, alice)
    assert await token_amount(nft_settings.solana_rpc_url, address, minted["mint_address"]) == 1


async def test_gateway_outage_is_waited_out(
    saga: None, stack: Any, http: httpx.AsyncClient, admin: Account, alice: Account,
    nft_settings: Settings,
) -> None:
    """Arweave down: nothing is uploaded or minted, nothing fails; all done after restart."""
    card_id = await make_card(http, admin, alice)
    arweave = stack.part("arweave")
    arweave.stop()
    try:
        nft = await request_mint(http, alice, card_id)
        await asyncio.sleep(4)
        body = (await http.get(f"/nfts/{nft['id']}")).json()
        assert body["status"] in ("pending", "uploading") and body["mint_address"] is None, body
    finally:
        arweave.start()
    minted = await wait_status(http, nft["id"], "minted", timeout=60)
    assert await arweave_uploads(nft_settings.arweave_url, nft["id"]) == [
        minted["metadata_uri"].rsplit("/", 1)[-1]]


async def test_permanent_failure_is_recorded_and_dead_lettered(
    saga: None, http: httpx.AsyncClient, admin: Account, alice: Account, db: Db,
    nft_settings: Settings,
) -> None:
    """An owner without a custody address cannot receive a token: ``failed`` + ece.dlq."""
    card_id = await make_card(http, admin, alice)
    consumer = Consumer({"bootstrap.servers": nft_settings.kafka_bootstrap,
                         "group.id": f"test-dlq-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
    consumer.subscribe([DLQ])
    execute(db, "UPDATE users SET custody_address = NULL WHERE id = %s", alice.id)
    try:
        nft = await request_mint(http, alice, card_id)
        failed = await wait_status(http, nft["id"], "failed")
    finally:
        address = db.value("SELECT address FROM custody_keys WHERE user_id = %s", alice.id)
        execute(db, "UPDATE users SET custody_address = %s WHERE id = %s", address, alice.id)
    assert "custody address" in failed["error"]
    assert failed["mint_address"] is None and failed["tx_signature"] is None

    async def dead_letter() -> dict[str, Any] | None:
        message = await asyncio.to_thread(consumer.poll, 0.5)
        if message is None or message.error():
            return None
        raw = message.value()
        if raw is None:
            return None
        value = json.loads(raw)
        if message.key() == b"ece.public.nfts" and nft["id"] in (value.get("payload") or ""):
            return dict(value)
        return None

    try:
        letter = await wait_for(dead_letter, 30, "the failure on ece.dlq", every=0)
    finally:
        consumer.close()
    assert letter["source_topic"] == "ece.public.nfts" and letter["pipeline"] == "mint_saga"
    assert "custody address" in letter["error"]


async def test_a_drop_is_bundled_and_every_item_resolves(
    saga: None, http: httpx.AsyncClient, admin: Account, alice: Account, db: Db,
    nft_settings: Settings,
) -> None:
    """Twenty mints requested together: metadata travels as ANS-104 data items in fewer
    Arweave transactions than NFTs, yet every NFT has its own item id, URI and document,
    one upload each, and one confirmed mint."""
    cards = await asyncio.gather(*(make_card(http, admin, alice, name=f"Drop card {i}")
                                   for i in range(20)))
    requested = await asyncio.gather(*(request_mint(http, alice, c) for c in cards))
    minted = [await wait_status(http, r["id"], "minted", timeout=90) for r in requested]
    gateway = nft_settings.arweave_url
    items = [n["metadata_uri"].rsplit("/", 1)[-1] for n in minted]
    assert len(set(items)) == 20
    query = ('query { transactions(tags: [{name: "ECE-Kind", values: ["metadata-bundle"]}], '
             "first: 100) { edges { node { id } } } }")
    async with httpx.AsyncClient(timeout=10) as plain:
        r = await plain.post(f"{gateway}/graphql", json={"query": query})
        bundle_of: dict[str, str] = {}
        for edge in r.json()["data"]["transactions"]["edges"]:
            raw = (await plain.get(f"{gateway}/{edge['node']['id']}")).content
            for item in parse_bundle(raw):
                assert item.verify()
                bundle_of[item.id] = edge["node"]["id"]
        assert set(items) <= set(bundle_of), "an NFT's metadata is not in any bundle"
        assert len({bundle_of[i] for i in items}) < 20, "one Arweave transaction per NFT"
        for card_id, nft in zip(cards, minted, strict=True):
            assert (await plain.get(nft["metadata_uri"])).json()["card_id"] == card_id
    for nft, item in zip(minted, items, strict=True):
        assert await arweave_uploads(gateway, nft["id"]) == [item]
    rows = db.rows("SELECT count(*), count(DISTINCT signature) FROM nft_transactions "
                   "WHERE kind = 'mint' AND status = 'confirmed' AND nft_id = ANY(%s::uuid[])",
                   [n["id"] for n in minted])
    assert rows == [(20, 20)]
