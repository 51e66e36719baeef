"""The local node's JSON-RPC surface: formats and error codes a real client relies on."""

from __future__ import annotations

import base64

import base58
import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.models import TxOpts
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from api.integrations.solana import ChainUnavailable, find_mint
from ops.stack.base import free_port

SOL = 1_000_000_000


def post(url: str, body: object) -> object:
    return httpx.post(url, json=body, timeout=5).json()


def rpc(url: str, method: str, *params: object) -> dict:
    result = post(url, {"jsonrpc": "2.0", "id": "x", "method": method, "params": list(params)})
    assert isinstance(result, dict)
    return result


def signed_transfer(payer: Keypair, blockhash: Hash, lamports: int) -> VersionedTransaction:
    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Keypair().pubkey(),
                                 lamports=lamports))
    return VersionedTransaction(MessageV0.try_compile(payer.pubkey(), [ix], [], blockhash),
                                [payer])


def test_cluster_methods(solana_url: str) -> None:
    assert rpc(solana_url, "getHealth")["result"] == "ok"
    assert "solana-core" in rpc(solana_url, "getVersion")["result"]
    latest = rpc(solana_url, "getLatestBlockhash")["result"]
    assert latest["value"]["lastValidBlockHeight"] > rpc(solana_url, "getBlockHeight")["result"]
    assert rpc(solana_url, "getMinimumBalanceForRentExemption", 165)["result"] == 2_039_280
    assert httpx.get(solana_url.rstrip("/") + "/health").text == "ok"
    batch = post(solana_url, [{"jsonrpc": "2.0", "id": 1, "method": "getSlot"},
                              {"jsonrpc": "2.0", "id": 2, "method": "noSuchMethod"}])
    assert isinstance(batch, list)
    assert batch[0]["id"] == 1 and isinstance(batch[0]["result"], int)
    assert batch[1]["error"]["code"] == -32601
    assert rpc(solana_url, "getBalance", "not-a-key")["error"]["code"] == -32602


async def test_send_encodings_and_statuses(client: AsyncClient, solana_url: str) -> None:
    payer = Keypair()
    await client.request_airdrop(payer.pubkey(), SOL)
    assert (await client.get_balance(payer.pubkey())).value == SOL
    blockhash = (await client.get_latest_blockhash()).value.blockhash

    tx58 = signed_transfer(payer, blockhash, 1_000_000)
    sent58 = rpc(solana_url, "sendTransaction", base58.b58encode(bytes(tx58)).decode())
    assert "result" in sent58, sent58
    sig = sent58["result"]
    assert sig == str(tx58.signatures[0])
    tx64 = signed_transfer(payer, blockhash, 2_000_000)
    sent = rpc(solana_url, "sendTransaction", base64.b64encode(bytes(tx64)).decode(),
               {"encoding": "base64"})
    assert sent["result"] == str(tx64.signatures[0])

    statuses = (await client.get_signature_statuses(
        [tx58.signatures[0], tx64.signatures[0], Keypair().sign_message(b"x")])).value
    assert statuses[0] is not None and statuses[0].err is None
    assert statuses[1] is not None and statuses[2] is None
    got = (await client.get_transaction(tx64.signatures[0],
                                        max_supported_transaction_version=0)).value
    assert got is not None and got.transaction.meta is not None
    assert got.transaction.meta.fee == 5000

    fee = (await client.get_fee_for_message(tx64.message)).value
    assert fee == 5000

    # Simulation without signatures (fee/compute estimates) works, as on a validator.
    unsigned = VersionedTransaction.populate(tx64.message, [Signature.default()])
    sim = (await client.simulate_transaction(unsigned)).value
    assert sim.err is None and sim.units_consumed
    sim = (await client.simulate_transaction(unsigned, sig_verify=True)).value
    assert sim.err is not None


async def test_failed_transaction_errors(client: AsyncClient, solana_url: str) -> None:
    payer = Keypair()
    await client.request_airdrop(payer.pubkey(), SOL)
    blockhash = (await client.get_latest_blockhash()).value.blockhash
    too_much = signed_transfer(payer, blockhash, 10 * SOL)

    answer = rpc(solana_url, "sendTransaction", base64.b64encode(bytes(too_much)).decode(),
                 {"encoding": "base64"})
    assert answer["error"]["code"] == -32002
    assert answer["error"]["data"]["logs"], "preflight failure carries the program logs"
    assert answer["error"]["message"].startswith("Transaction simulation failed: Error processing")

    sim = (await client.simulate_transaction(too_much)).value
    assert sim.err is not None and sim.logs

    # skipPreflight: the signature comes back and the failure shows in the status.
    skipped = signed_transfer(payer, blockhash, 20 * SOL)
    resp = await client.send_raw_transaction(bytes(skipped), TxOpts(skip_preflight=True))
    status = (await client.get_signature_statuses([resp.value])).value[0]
    assert status is not None and status.err is not None

    stale = signed_transfer(payer, Hash.new_unique(), 1_000_000)
    answer = rpc(solana_url, "sendTransaction", base64.b64encode(bytes(stale)).decode(),
                 {"encoding": "base64"})
    assert answer["error"]["code"] == -32002
    assert answer["error"]["data"]["err"] == "BlockhashNotFound"


async def test_unreachable_rpc_gives_up_loudly() -> None:
    async with AsyncClient(f"http://127.0.0.1:{free_port()}", timeout=1) as dead:
        with pytest.raises(ChainUnavailable, match="gave up after"):
            await find_mint(dead, Keypair().pubkey())
