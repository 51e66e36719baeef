"""Arweave: uploads/s of small JSON metadata documents to the local arlocal gateway.

Each upload is GET /tx_anchor + GET /price (concurrently), an RSA-4096 PSS signature,
and POST /tx. Printed for one client at a time and for several concurrent uploads,
next to the signing rate alone (the client's CPU floor). Not a test: run with
``uv run python -m bench.bench_arweave_upload``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from api.integrations.arweave import ArweaveClient, Transaction, Wallet
from api.integrations.arweave.ans104 import BUNDLE_TAGS, bundle_bytes, sign_item
from bench.harness import percentiles, throwaway_platform
from ops.stack.base import free_port

SECONDS = 10.0
TAGS = {"Content-Type": "application/json", "App-Name": "ECE"}


def _doc(i: int) -> bytes:
    return json.dumps({
        "name": f"Bench card #{i}", "description": "benchmark metadata", "image": "ar://x",
        "attributes": [{"trait_type": "grade", "value": "PSA 9"}, {"trait_type": "n", "value": i}],
    }).encode()


async def _uploads(
    url: str, wallet: Wallet, concurrency: int, seconds: float
) -> tuple[int, float, list[float]]:
    latencies: list[float] = []
    counter = iter(range(10**9))
    async with ArweaveClient(url) as client:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                await client.upload(_doc(next(counter)), TAGS, wallet)
                latencies.append((time.perf_counter() - t0) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(latencies), elapsed, latencies


async def raw_gateway(url: str, items: int, seconds: float = 3.0) -> tuple[float, float]:
    """(documents/s as one transaction each, 4 in flight; documents/s in one ANS-104
    bundle of ``items``, signing every item included) against the gateway at ``url``."""
    wallet = Wallet.generate()
    async with ArweaveClient(url) as client:
        await client.ensure_funded(wallet, 10**16)
    n, elapsed, _ = await _uploads(url, wallet, 4, seconds)
    async with ArweaveClient(url) as client:
        started = time.perf_counter()
        signed = await asyncio.to_thread(
            lambda: [sign_item(_doc(i), TAGS, wallet) for i in range(items)])
        await client.upload(bundle_bytes(signed), BUNDLE_TAGS, wallet)
        bundled = items / (time.perf_counter() - started)
        served = await client.get_data(signed[-1].id)  # the item resolves by its own id
        assert served == _doc(items - 1), "the gateway does not serve bundled items"
    return n / elapsed, bundled


def _sign_rate(wallet: Wallet, seconds: float = 3.0) -> float:
    tx = Transaction.build(_doc(0), owner=wallet.owner, last_tx="", reward=1, tags=TAGS)
    count, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        tx.signed(wallet)
        count += 1
    return count / seconds


async def _run(url: str) -> None:
    wallet = Wallet.generate()
    async with ArweaveClient(url) as client:
        await client.ensure_funded(wallet, 10**16)
        tx_id = await client.upload(_doc(-1), TAGS, wallet)  # warm up both sides
        await client.wait_confirmed(tx_id, within=30)
    print(f"signing only (RSA-4096 PSS + deep hash): {_sign_rate(wallet):7.1f} tx/s")
    for concurrency in (1, 4, 16):
        n, elapsed, lat = await _uploads(url, wallet, concurrency, SECONDS)
        rate = n / elapsed
        print(f"uploads, concurrency {concurrency:>2}: {rate:7.1f} uploads/s  {percentiles(lat)}")
    single, bundled = await raw_gateway(url, 100)
    print(f"one ANS-104 bundle of 100 documents: {bundled:7.1f} docs/s (signing included; "
          f"one transaction each, 4 in flight: {single:.1f}/s)")
    async with ArweaveClient(url) as client:
        t0 = time.perf_counter()
        tx_id = await client.upload(_doc(-2), TAGS, wallet)
        status = await client.wait_confirmed(tx_id, within=30, poll=0.05)
        took = (time.perf_counter() - t0) * 1000
        print(f"upload to confirmed (automine every 1 s): {took:.0f} ms "
              f"(block {status.block_height})")


def main() -> None:
    os.environ["ECE_ARWEAVE_URL"] = f"http://127.0.0.1:{free_port()}"  # never the dev gateway
    with throwaway_platform("arweave") as platform:
        asyncio.run(_run(platform.part("arweave").url))


if __name__ == "__main__":
    main()
