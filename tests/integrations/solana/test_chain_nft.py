"""NFT mint, read-back, transfer, idempotence and restart against the real local node."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import struct
import uuid

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from api.integrations.solana import (
    TOKEN_2022_PROGRAM_ID,
    TransactionFailed,
    associated_token_address,
    deterministic_mint_keypair,
    find_mint,
    mint_nft,
    onchain_owner,
    onchain_owners,
    transfer_nft,
)
from ops.stack.supervisor import Platform

SECRET = b"test-secret-for-mint-derivation"


def rpc(url: str, method: str, *params: object) -> dict:
    """One plain JSON-RPC call over httpx: checks the wire format, not our client."""
    resp = httpx.post(url, json={"jsonrpc": "2.0", "id": 7, "method": method,
                                 "params": list(params)}, timeout=5)
    resp.raise_for_status()
    body = resp.json()
    assert body["id"] == 7
    return body


def account_data(url: str, address: Pubkey) -> tuple[str, bytes]:
    value = rpc(url, "getAccountInfo", str(address), {"encoding": "base64"})["result"]["value"]
    assert value is not None, f"{address} not found"
    return value["owner"], base64.b64decode(value["data"][0])


async def test_mint_reads_back_over_plain_json_rpc(
    client: AsyncClient, payer: Keypair, solana_url: str
) -> None:
    owner = Keypair().pubkey()
    mint = deterministic_mint_keypair(SECRET, uuid.uuid4())
    uri = "ar://" + "x" * 43
    signature = await mint_nft(client, payer, mint, owner, "Charizard #4", "ECE", uri)

    status = rpc(solana_url, "getSignatureStatuses", [str(signature)])["result"]["value"][0]
    assert status["err"] is None and status["confirmationStatus"] in ("confirmed", "finalized")

    program, data = account_data(solana_url, mint.pubkey())
    assert program == str(TOKEN_2022_PROGRAM_ID)
    # Base mint layout: COption<Pubkey> authority (u32 tag) | supply u64 | decimals u8 | init.
    authority_tag, supply, decimals, initialized = struct.unpack_from("<I32xQB?", data, 0)
    assert (authority_tag, supply, decimals, initialized) == (0, 1, 0, True)
    for text in (b"Charizard #4", b"ECE", uri.encode()):
        assert text in data[166:], "metadata lives on the mint itself"

    ata = associated_token_address(owner, mint.pubkey())
    found = rpc(solana_url, "getTokenAccountsByOwner", str(owner), {"mint": str(mint.pubkey())},
                {"encoding": "base64"})["result"]["value"]
    assert [a["pubkey"] for a in found] == [str(ata)]
    ata_data = base64.b64decode(found[0]["account"]["data"][0])
    assert ata_data[0:32] == bytes(mint.pubkey()) and ata_data[32:64] == bytes(owner)
    assert struct.unpack_from("<Q", ata_data, 64)[0] == 1
    by_program = rpc(solana_url, "getTokenAccountsByOwner", str(owner),
                     {"programId": str(TOKEN_2022_PROGRAM_ID)}, {"encoding": "base64"})
    assert [a["pubkey"] for a in by_program["result"]["value"]] == [str(ata)]

    state = await find_mint(client, mint.pubkey())
    assert state is not None and state.is_nft
    assert state.holder == owner and state.token_account == ata
    assert state.metadata is not None
    assert (state.metadata.name, state.metadata.symbol, state.metadata.uri) == (
        "Charizard #4", "ECE", uri)
    assert state.metadata.update_authority == payer.pubkey()


async def test_transfer_moves_the_nft(client: AsyncClient, payer: Keypair, solana_url: str) -> None:
    alice, bob = Keypair(), Keypair()
    mint = Keypair()
    await mint_nft(client, payer, mint, alice.pubkey(), "Card", "ECE", "ar://a")
    await transfer_nft(client, payer, alice, bob.pubkey(), mint.pubkey())

    assert await onchain_owner(client, mint.pubkey(), bob.pubkey()) == (bob.pubkey(), 1)
    # Reconciliation with a stale expectation still finds the real holder.
    assert await onchain_owner(client, mint.pubkey(), alice.pubkey()) == (bob.pubkey(), 1)
    largest = rpc(solana_url, "getTokenLargestAccounts", str(mint.pubkey()))["result"]["value"]
    assert largest[0]["address"] == str(associated_token_address(bob.pubkey(), mint.pubkey()))
    assert largest[0]["amount"] == "1"

    # And back: the ATA of alice already exists (idempotent create), the token returns.
    await transfer_nft(client, payer, bob, alice.pubkey(), mint.pubkey())
    assert await onchain_owner(client, mint.pubkey()) == (alice.pubkey(), 1)

    # A->B again: byte-identical to the first transfer if the blockhash is the same;
    # the client must notice (AlreadyProcessed) and re-sign, not report a false success.
    await transfer_nft(client, payer, alice, bob.pubkey(), mint.pubkey())
    assert await onchain_owner(client, mint.pubkey()) == (bob.pubkey(), 1)


async def test_deterministic_mint_is_found_and_never_minted_twice(
    client: AsyncClient, payer: Keypair
) -> None:
    nft_id = uuid.uuid4()
    first, again = deterministic_mint_keypair(SECRET, nft_id), deterministic_mint_keypair(
        SECRET, nft_id)
    assert first.pubkey() == again.pubkey()
    assert deterministic_mint_keypair(SECRET, uuid.uuid4()).pubkey() != first.pubkey()
    assert deterministic_mint_keypair(b"other", nft_id).pubkey() != first.pubkey()

    owner = Keypair().pubkey()
    assert await find_mint(client, first.pubkey(), owner) is None
    await mint_nft(client, payer, first, owner, "Card", "ECE", "ar://one")

    state = await find_mint(client, again.pubkey(), owner)
    assert state is not None and state.is_nft and state.holder == owner

    # A saga that skipped the check would fail permanently, never mint a second token.
    with pytest.raises(TransactionFailed) as failure:
        await mint_nft(client, payer, again, owner, "Card", "ECE", "ar://two")
    assert failure.value.account_in_use
    assert await onchain_owner(client, first.pubkey(), owner) == (owner, 1)


async def test_failing_transaction_is_a_permanent_error(
    client: AsyncClient, payer: Keypair
) -> None:
    holder, thief = Keypair(), Keypair()
    mint = Keypair()
    await mint_nft(client, payer, mint, holder.pubkey(), "Card", "ECE", "ar://p")
    with pytest.raises(TransactionFailed) as failure:
        await transfer_nft(client, payer, thief, thief.pubkey(), mint.pubkey())
    assert failure.value.logs, "program logs explain the failure"
    assert failure.value.signature
    assert await onchain_owner(client, mint.pubkey(), holder.pubkey()) == (holder.pubkey(), 1)


async def test_batched_ownership_check(client: AsyncClient, payer: Keypair) -> None:
    owners = [Keypair() for _ in range(3)]
    mints = [Keypair() for _ in range(3)]
    for mint, owner in zip(mints, owners, strict=True):
        await mint_nft(client, payer, mint, owner.pubkey(), "Card", "ECE", "ar://b")
    await transfer_nft(client, payer, owners[2], owners[0].pubkey(), mints[2].pubkey())
    missing = Keypair().pubkey()
    expected = [(m.pubkey(), o.pubkey()) for m, o in zip(mints, owners, strict=True)]
    result = await onchain_owners(client, [*expected, (missing, owners[0].pubkey())])
    assert result[mints[0].pubkey()] == (owners[0].pubkey(), 1)
    assert result[mints[1].pubkey()] == (owners[1].pubkey(), 1)
    assert result[mints[2].pubkey()] == (owners[0].pubkey(), 1), "moved: the real holder"
    assert result[missing] == (None, 0)


async def test_state_survives_a_restart(
    platform: Platform, client: AsyncClient, payer: Keypair, solana_url: str
) -> None:
    owner = Keypair().pubkey()
    mint = Keypair()
    signature = await mint_nft(client, payer, mint, owner, "Persisted", "ECE", "ar://r")
    slot_before = rpc(solana_url, "getSlot")["result"]

    part = platform.part("solana")
    part.stop()
    part.start()
    assert part.health()[0]

    async with AsyncClient(solana_url, timeout=10) as fresh:
        state = await find_mint(fresh, mint.pubkey(), owner)
        assert state is not None and state.is_nft and state.holder == owner
        assert state.metadata is not None and state.metadata.name == "Persisted"
        statuses = (await fresh.get_signature_statuses([signature])).value
        assert statuses[0] is not None and statuses[0].err is None
        # The ledger too: the transaction itself is still readable (audit anchors are
        # verified this way after a restart).
        landed = (await fresh.get_transaction(signature,
                                              max_supported_transaction_version=0)).value
        assert landed is not None and landed.transaction.meta is not None
        assert landed.transaction.meta.err is None and landed.transaction.meta.fee > 0
        assert landed.transaction.meta.log_messages
        assert landed.transaction.transaction.signatures[0] == signature  # type: ignore[union-attr]
        assert (await fresh.get_balance(payer.pubkey())).value > 0
        # The chain keeps working after the restart: the same payer mints again.
        await mint_nft(fresh, payer, Keypair(), owner, "After", "ECE", "ar://r2")
    assert rpc(solana_url, "getSlot")["result"] >= slot_before


async def test_periodic_save_survives_a_crash(
    platform: Platform, client: AsyncClient, payer: Keypair, solana_url: str
) -> None:
    """SIGKILL gives no chance to save at exit: the periodic snapshot must hold the mint."""
    owner = Keypair().pubkey()
    mint = Keypair()
    signature = await mint_nft(client, payer, mint, owner, "Crash", "ECE", "ar://c")
    part = platform.part("solana")
    assert part.process is not None and part.process.proc is not None
    await asyncio.sleep(3.0)  # > the 2 s save interval
    os.killpg(part.process.proc.pid, signal.SIGKILL)
    part.process.proc.wait(10)
    part.stop()
    part.start()
    async with AsyncClient(solana_url, timeout=10) as fresh:
        state = await find_mint(fresh, mint.pubkey(), owner)
        assert state is not None and state.holder == owner
        landed = (await fresh.get_transaction(signature,
                                              max_supported_transaction_version=0)).value
        assert landed is not None, "a transaction saved before the crash stays readable"
