"""The Python client against the real arlocal gateway (started by the platform).

arlocal checks ids, signatures, data roots, anchors and balances the way Arweave
nodes do, so an accepted upload here means the bytes on the wire are right.
"""

from __future__ import annotations

import hashlib
import json
import os

import httpx
import pytest

from api.integrations.arweave import (
    ArweaveClient,
    GatewayUnavailable,
    InsufficientFunds,
    NotFound,
    Transaction,
    TransactionRejected,
    Wallet,
)
from api.integrations.arweave.encoding import b64url_decode, b64url_encode
from ops.stack.base import free_port

METADATA = {
    "name": "Charizard 1st Edition #4/102",
    "description": "PSA 10 graded holo",
    "image": "ar://placeholder",
    "attributes": [
        {"trait_type": "grade", "value": "PSA 10"},
        {"trait_type": "set", "value": "Base"},
    ],
}
TAGS = {"Content-Type": "application/json", "App-Name": "ECE", "Card-Id": "card-4-102"}


async def test_json_metadata_round_trips_with_tags_and_confirms(
    client: ArweaveClient, funded: Wallet, arweave_url: str
) -> None:
    data = json.dumps(METADATA).encode()
    tx_id = await client.upload(data, TAGS, funded)

    async with httpx.AsyncClient(base_url=arweave_url) as raw:  # the gateway's own API
        served = await raw.get(f"/{tx_id}")
        assert served.status_code == 200
        assert served.json() == METADATA
        assert served.headers["content-type"].startswith("application/json")
        header = (await raw.get(f"/tx/{tx_id}")).json()
    tags = {b64url_decode(t["name"]).decode(): b64url_decode(t["value"]).decode()
            for t in header["tags"]}
    assert tags == TAGS
    assert header["owner"] == funded.owner and header["data_size"] == str(len(data))

    assert await client.get_data(tx_id) == data
    assert (await client.get_transaction(tx_id)).verify()

    await client.mine()
    status = await client.status(tx_id)
    assert status.confirmed and status.block_height is not None and status.block_hash


async def test_upload_confirms_without_manual_mining(client: ArweaveClient, funded: Wallet) -> None:
    """The launcher mines on its own, as Arweave does: status() polling terminates."""
    tx_id = await client.upload(b'{"auto": true}', {"Content-Type": "application/json"}, funded)
    status = await client.wait_confirmed(tx_id, within=30, poll=0.2)
    assert status.confirmed


async def test_large_payload_goes_through_chunks(client: ArweaveClient, funded: Wallet) -> None:
    data = os.urandom(600 * 1024)  # three chunks: POST /tx without data, then POST /chunk x3
    tx = await client.create_transaction(data, {"Content-Type": "application/octet-stream"}, funded)
    assert not tx.inline and len(tx.chunk_bodies()) == 3
    assert tx.to_json()["data"] == ""
    tx_id = await client.post(tx)
    assert await client.get_data(tx_id) == data


async def test_tampered_signature_is_rejected_by_the_gateway(
    client: ArweaveClient, funded: Wallet
) -> None:
    tx = await client.create_transaction(b'{"tampered": 1}', TAGS, funded)
    signature = bytearray(b64url_decode(tx.signature))
    signature[100] ^= 0x01
    forged = Transaction.from_json({
        **tx.to_json(),
        "signature": b64url_encode(bytes(signature)),
        # keep id == sha256(signature): only the RSA check can catch this
        "id": b64url_encode(hashlib.sha256(bytes(signature)).digest()),
    })
    with pytest.raises(TransactionRejected) as caught:
        await client.post(forged)
    assert caught.value.status == 400
    assert (await client.status(forged.id)).state == "not_found"
    with pytest.raises(NotFound):
        await client.get_data(forged.id)
    assert await client.get_data(await client.post(tx)) == b'{"tampered": 1}'  # original is fine


async def test_tampered_tags_and_data_are_rejected(client: ArweaveClient, funded: Wallet) -> None:
    tx = await client.create_transaction(b'{"n": 1}', TAGS, funded)
    body = tx.to_json()
    other_tag = {**body, "tags": [*body["tags"], {"name": "WA", "value": "WQ"}]}
    other_data = {**body, "data": b64url_encode(b'{"n": 2}')}  # data_root no longer matches
    for forged in (other_tag, other_data):
        response = await client._http.post("/tx", json=forged)
        assert response.status_code == 400, forged


async def test_unfunded_wallet_is_refused(client: ArweaveClient) -> None:
    with pytest.raises(InsufficientFunds):
        await client.upload(b"{}", TAGS, Wallet.generate())


async def test_mint_and_mine_are_local_only(client: ArweaveClient) -> None:
    assert await client.is_local()
    wallet = Wallet.generate()
    assert await client.mint(wallet.address, 5) == 5
    assert await client.ensure_funded(wallet, 12) == 12
    assert await client.balance(wallet.address) == 12


async def test_status_of_unknown_tx_is_not_found(client: ArweaveClient) -> None:
    assert (await client.status(b64url_encode(os.urandom(32)))).state == "not_found"


async def test_unreachable_gateway_gives_up_loudly_after_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with ArweaveClient(url, attempts=3, backoff_initial=0.01, backoff_max=0.05) as dead:
        with pytest.raises(GatewayUnavailable, match="failed 3 times"):
            await dead.tx_anchor()
