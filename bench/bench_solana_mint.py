"""Solana NFT mint throughput: raw LiteSVM in-process vs the local JSON-RPC node.

The in-process figure is the ceiling (the VM alone); the RPC figures are what
the mint saga gets through the real ``solana`` AsyncClient over HTTP with
confirmation, sequentially and with several mints in flight. Run with
``uv run python -m bench.bench_solana_mint``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

from solana.rpc.async_api import AsyncClient
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import VersionedTransaction

from api.nfts.chain import mint_nft
from api.nfts.chain import token2022 as t22
from bench.harness import throwaway_platform
from ece.log import configure
from ece.stack.base import free_port

RAW_MINTS = 1000
SEQUENTIAL_MINTS = 200
CONCURRENT_MINTS = 600
IN_FLIGHT = 16


def raw_litesvm() -> float:
    """Mints per second with LiteSVM in this process (build + sign + execute)."""
    svm = LiteSVM()
    payer = Keypair()
    svm.airdrop(payer.pubkey(), 10**12)
    owner = Keypair().pubkey()
    space = t22.mint_space_with_pointer()
    started = time.perf_counter()
    for i in range(RAW_MINTS):
        mint = Keypair()
        name, uri = f"Card {i}", "ar://" + "x" * 43
        rent = svm.minimum_balance_for_rent_exemption(
            space + t22.token_metadata_len(name, "ECE", uri))
        m, p = mint.pubkey(), payer.pubkey()
        ixs = [
            create_account(CreateAccountParams(from_pubkey=p, to_pubkey=m, lamports=rent,
                                               space=space, owner=t22.TOKEN_2022_PROGRAM_ID)),
            t22.initialize_metadata_pointer(m, p, m),
            t22.initialize_mint2(m, 0, p),
            t22.initialize_token_metadata(m, p, p, name, "ECE", uri),
            t22.create_associated_token_account_idempotent(p, owner, m),
            t22.mint_to_checked(m, t22.associated_token_address(owner, m), p, 1, 0),
            t22.set_authority(m, p, t22.AUTHORITY_MINT_TOKENS, None),
        ]
        msg = MessageV0.try_compile(p, ixs, [], svm.latest_blockhash())
        result = svm.send_transaction(VersionedTransaction(msg, [payer, mint]))
        assert type(result).__name__ == "TransactionMetadata", result
    return RAW_MINTS / (time.perf_counter() - started)


async def over_rpc(url: str) -> tuple[float, float, float, float]:
    """(sequential mints/s, p50 ms, concurrent mints/s, concurrent p50 ms) through HTTP."""
    async with AsyncClient(url, timeout=30) as client:
        payer = Keypair()
        await client.request_airdrop(payer.pubkey(), 10**13)
        owner = Keypair().pubkey()
        uri = "ar://" + "x" * 43

        async def one(i: int, latencies: list[float]) -> None:
            started = time.perf_counter()
            await mint_nft(client, payer, Keypair(), owner, f"Card {i}", "ECE", uri)
            latencies.append((time.perf_counter() - started) * 1000)

        await one(-1, [])  # warm-up: connection, rent cache
        seq: list[float] = []
        started = time.perf_counter()
        for i in range(SEQUENTIAL_MINTS):
            await one(i, seq)
        seq_rate = SEQUENTIAL_MINTS / (time.perf_counter() - started)

        conc: list[float] = []
        queue = iter(range(CONCURRENT_MINTS))

        async def worker() -> None:
            for i in queue:
                await one(i, conc)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        conc_rate = CONCURRENT_MINTS / (time.perf_counter() - started)
        return seq_rate, statistics.median(seq), conc_rate, statistics.median(conc)


def main() -> None:
    configure("WARNING")
    raw = raw_litesvm()
    print(f"raw LiteSVM in-process        {raw:8.0f} mints/s  ({RAW_MINTS} mints)")
    os.environ["ECE_SOLANA_RPC_URL"] = f"http://127.0.0.1:{free_port()}"
    with throwaway_platform("solana") as platform:
        seq, seq_p50, conc, conc_p50 = asyncio.run(over_rpc(platform.settings.solana_rpc_url))
    print(f"RPC, sequential, confirmed    {seq:8.0f} mints/s  p50 {seq_p50:6.1f} ms  "
          f"({SEQUENTIAL_MINTS} mints)")
    print(f"RPC, {IN_FLIGHT} in flight, confirmed {conc:8.0f} mints/s  p50 {conc_p50:6.1f} ms  "
          f"({CONCURRENT_MINTS} mints)")
    print(f"RPC / raw                     {conc / raw:8.2f}")


if __name__ == "__main__":
    main()
