"""Commit of a sale -> ``GET /cards/{id}/price`` reflecting it, p50/p99 (not a test).

Starts a throwaway stack (API, CDC, Flink), seeds listed cards and a funded buyer
through the REST API (the same seeding as :mod:`bench.bench_realtime_latency`), then
buys at ``--rate`` sales per second. For each sale a poller reads the card's price
every ``--poll-ms`` until the hot set (``X-Data-Source: hot``) shows it sold; a
sample runs from sending the purchase (an upper bound of its commit) to that read,
so it covers Debezium, Kafka, ``market_activity``, ``market_data``, Redis and the
API. Baseline, same run: the purchase round trip itself.

    uv run python -m bench.bench_price_latency [--rate 10] [--seconds 20] [--poll-ms 25]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httpx

from bench.bench_realtime_latency import _auth, _login, _make_admin, _seed
from bench.harness import percentiles, throwaway_platform

GIVE_UP_S = 60.0


async def _measure(api: str, admin_name: str, rate: float, seconds: float,
                   poll_s: float) -> None:
    async with httpx.AsyncClient(base_url=api, timeout=30,
                                 limits=httpx.Limits(max_connections=128)) as http:
        admin = await _login(http, admin_name)
        sales = int(rate * seconds)
        print(f"  seeding {sales} listings ...", flush=True)
        _, buyers, listings = await _seed(http, admin, sales)
        round_trips: list[float] = []
        reflected: list[float] = []

        async def sell_and_watch(listing_id: str, card_id: str, buyer: dict[str, Any]) -> None:
            t0 = time.perf_counter()
            r = await http.post(f"/listings/{listing_id}/purchase", headers=_auth(buyer))
            r.raise_for_status()
            round_trips.append((time.perf_counter() - t0) * 1000)
            while time.perf_counter() - t0 < GIVE_UP_S:
                r = await http.get(f"/cards/{card_id}/price")
                if r.headers.get("x-data-source") == "hot" and \
                        r.json()["last_sale_cents"] is not None:
                    reflected.append((time.perf_counter() - t0) * 1000)
                    return
                await asyncio.sleep(poll_s)

        print(f"  buying at {rate:.0f}/s for {seconds:.0f} s ...", flush=True)
        tasks = []
        started = time.perf_counter()
        for i, (listing_id, _, card_id) in enumerate(listings):
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(
                sell_and_watch(listing_id, card_id, buyers[i % len(buyers)])))
        await asyncio.gather(*tasks)
        print(f"  purchase round trip (baseline)   {percentiles(round_trips)}")
        print(f"  commit -> GET price reflects it  {percentiles(reflected)}"
              f"  missing {len(listings) - len(reflected)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10.0, help="sales per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to buy")
    parser.add_argument("--poll-ms", type=float, default=25.0, help="price read interval")
    args = parser.parse_args()
    with throwaway_platform("api", "cdc", "flink") as platform:
        admin = _make_admin()
        asyncio.run(_measure(platform.part("api").url, admin["username"], args.rate,
                             args.seconds, args.poll_ms / 1000))


if __name__ == "__main__":
    main()
