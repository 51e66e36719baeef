"""Solana NFT mint throughput: raw LiteSVM in-process vs the local JSON-RPC node.

The in-process figure is the ceiling (the VM alone); the RPC figures are what
the mint saga gets through the real ``solana`` AsyncClient over HTTP with
confirmation, sequentially and with several mints in flight. Run with
``uv run python -m bench.bench_solana_mint``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import statistics
import time

import httpx
from solana.rpc.async_api import AsyncClient
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import VersionedTransaction

from api.integrations.solana import mint_nft
from api.integrations.solana import token2022 as t22
from bench.harness import throwaway_platform
from ece.log import configure
from ops.stack.base import free_port

RAW_MINTS = 1000
SEQUENTIAL_MINTS = 200
CONCURRENT_MINTS = 600
IN_FLIGHT = 16


def mint_tx(payer: Keypair, owner: Pubkey, i: int, rent: int, blockhash: Hash
            ) -> VersionedTransaction:
    """The same one-transaction mint ``mint_nft`` sends."""
    mint = Keypair()
    name, uri = f"Card {i:05d}", "ar://" + "x" * 43
    space = t22.mint_space_with_pointer()
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
    msg = MessageV0.try_compile(p, ixs, [], blockhash)
    return VersionedTransaction(msg, [payer, mint])


RENT = 10_000_000  # more than the rent-exempt minimum of any mint here


def raw_litesvm() -> tuple[float, float]:
    """(mints/s building + signing + executing, mints/s executing pre-signed txs) in-process."""
    svm = LiteSVM()
    payer = Keypair()
    svm.airdrop(payer.pubkey(), 10**13)
    owner = Keypair().pubkey()
    started = time.perf_counter()
    for i in range(RAW_MINTS):
        result = svm.send_transaction(mint_tx(payer, owner, i, RENT, svm.latest_blockhash()))
        assert type(result).__name__ == "TransactionMetadata", result
    full = RAW_MINTS / (time.perf_counter() - started)
    txs = [mint_tx(payer, owner, i, RENT, svm.latest_blockhash()) for i in range(RAW_MINTS)]
    started = time.perf_counter()
    for tx in txs:
        assert type(svm.send_transaction(tx)).__name__ == "TransactionMetadata"
    return full, RAW_MINTS / (time.perf_counter() - started)


def node_capacity(url: str) -> float:
    """Mints/s the node executes: pre-signed txs over one raw keep-alive socket, no client."""
    host, port = url.removeprefix("http://").split(":")
    payer, owner = Keypair(), Keypair().pubkey()
    httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "requestAirdrop",
                          "params": [str(payer.pubkey()), 10**13]})
    blockhash = Hash.from_string(httpx.post(url, json={
        "jsonrpc": "2.0", "id": 1, "method": "getLatestBlockhash"}).json()["result"]["value"][
        "blockhash"])
    bodies = []
    for i in range(RAW_MINTS):
        raw = base64.b64encode(bytes(mint_tx(payer, owner, i, RENT, blockhash))).decode()
        body = json.dumps({"jsonrpc": "2.0", "id": i, "method": "sendTransaction",
                           "params": [raw, {"encoding": "base64"}]}).encode()
        bodies.append(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body)
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    started = time.perf_counter()
    for request in bodies:
        sock.sendall(request)
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(65536)
        head, _, rest = buf.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(rest) < length:
            rest += sock.recv(65536)
        assert b'"result"' in rest, rest[:300]
    rate = RAW_MINTS / (time.perf_counter() - started)
    sock.close()
    return rate


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
    raw, raw_presigned = raw_litesvm()
    print(f"LiteSVM in-process, build+sign+run {raw:8.0f} mints/s  ({RAW_MINTS} mints)")
    print(f"LiteSVM in-process, pre-signed     {raw_presigned:8.0f} mints/s")
    os.environ["ECE_SOLANA_RPC_URL"] = f"http://127.0.0.1:{free_port()}"
    with throwaway_platform("solana") as platform:
        url = platform.settings.solana_rpc_url
        node = node_capacity(url)
        seq, seq_p50, conc, conc_p50 = asyncio.run(over_rpc(url))
    print(f"node, pre-signed over raw HTTP     {node:8.0f} mints/s (sendTransaction w/ preflight)")
    print(f"AsyncClient, sequential, confirmed {seq:8.0f} mints/s  p50 {seq_p50:6.1f} ms  "
          f"({SEQUENTIAL_MINTS} mints)")
    print(f"AsyncClient, {IN_FLIGHT} in flight         {conc:8.0f} mints/s  "
          f"p50 {conc_p50:6.1f} ms  ({CONCURRENT_MINTS} mints)")
    print(f"best AsyncClient / in-process      {max(seq, conc) / raw:8.2f}")


if __name__ == "__main__":
    main()
