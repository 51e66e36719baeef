"""Commit of a sale -> ``listing_sold`` on the seller's WebSocket, at a steady sales rate.

Starts a throwaway stack (API, CDC, Flink, delivery) per API process count, seeds
sellers with listed cards and funded buyers through the REST API, opens one socket
per seller, then offers ``--rate`` sales per second for ``--seconds``. Each sample
runs from the sale's commit (the notification's ``created_at`` is the commit time
Debezium reports; same machine, same clock) to the moment the notification arrives
on the socket, so the figures include Debezium, Kafka, both Flink pipelines, the
delivery worker, the doorbell and the socket, but not the API's own queueing.
Printed beside it, same run: the purchase round trip (the baseline) and the rate
the API actually committed, since an overloaded API commits fewer than offered.

    uv run python -m bench.bench_realtime_latency [--rate 50] [--seconds 20] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime
from typing import Any

import httpx
from websockets.asyncio.client import connect

from bench.harness import percentiles, throwaway_platform

PASSWORD = "bench-password-1"
SELLERS = 10
BUYERS = 10  # one buyer would serialise every sale on its wallet row
PARTS = ("api", "cdc", "flink", "delivery")


async def _login(http: httpx.AsyncClient, username: str) -> dict[str, Any]:
    r = await http.post("/auth/login", json={"login": username, "password": PASSWORD})
    r.raise_for_status()
    return {"token": r.json()["access_token"], "username": username}


async def _register(http: httpx.AsyncClient) -> dict[str, Any]:
    username = f"b{uuid.uuid4().hex[:10]}"
    r = await http.post("/auth/register", json={"email": f"{username}@example.com",
                                                "username": username, "password": PASSWORD})
    r.raise_for_status()
    account = await _login(http, username)
    account["id"] = r.json()["id"]
    return account


def _auth(account: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {account['token']}"}


async def _seed(http: httpx.AsyncClient, admin: dict[str, Any], sales: int
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                           list[tuple[str, str, str]]]:
    sellers = [await _register(http) for _ in range(SELLERS)]
    buyers = [await _register(http) for _ in range(BUYERS)]
    for buyer in buyers:
        r = await http.post("/admin/deposits", headers=_auth(admin), json={
            "user_id": buyer["id"], "amount_cents": sales * 200, "reference": uuid.uuid4().hex})
        r.raise_for_status()
    listings: list[tuple[str, str, str]] = []  # (listing id, seller id, card id)
    semaphore = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        seller = sellers[i % SELLERS]
        async with semaphore:
            r = await http.post("/cards", headers=_auth(admin), json={
                "name": "Bench Card", "set_name": "Bench", "number": str(i), "rarity": "common",
                "owner_id": seller["id"]})
            r.raise_for_status()
            card_id = r.json()["id"]
            r = await http.post("/listings", headers=_auth(seller), json={
                "card_id": card_id, "price_cents": 100})
            r.raise_for_status()
            listings.append((r.json()["id"], seller["id"], card_id))

    await asyncio.gather(*(one(i) for i in range(sales)))
    return sellers, buyers, listings


async def _measure(api: str, admin: dict[str, Any], rate: float, seconds: float) -> None:
    sales = int(rate * seconds)
    async with httpx.AsyncClient(base_url=api, timeout=300,  # an overloaded API queues; wait
                                 limits=httpx.Limits(max_connections=64)) as http:
        print(f"  seeding {sales} listings ...", flush=True)
        sellers, buyers, listings = await _seed(http, admin, sales)
        sent: dict[str, float] = {}
        arrived: dict[str, float] = {}  # listing id -> commit -> socket, ms
        ws_base = api.replace("http://", "ws://", 1) + "/ws"

        async def listen(seller: dict[str, Any]) -> None:
            async with connect(f"{ws_base}?token={seller['token']}") as ws:
                async for raw in ws:
                    message = json.loads(raw)
                    if message["type"] == "notification" and \
                            message["data"]["kind"] == "listing_sold":
                        data = message["data"]
                        committed = datetime.fromisoformat(data["created_at"]).timestamp()
                        arrived[data["payload"]["listing_id"]] = (time.time() - committed) * 1000

        listeners = [asyncio.create_task(listen(s)) for s in sellers]
        await asyncio.sleep(2)
        round_trips: list[float] = []

        async def buy(listing_id: str, buyer: dict[str, Any]) -> None:
            t0 = time.perf_counter()
            sent[listing_id] = t0
            r = await http.post(f"/listings/{listing_id}/purchase", headers=_auth(buyer))
            r.raise_for_status()
            round_trips.append((time.perf_counter() - t0) * 1000)

        print(f"  buying at {rate:.0f}/s for {seconds:.0f} s ...", flush=True)
        tasks = []
        started = time.perf_counter()
        for i, (listing_id, _, _) in enumerate(listings):
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(buy(listing_id, buyers[i % BUYERS])))
        await asyncio.gather(*tasks)
        committed_rate = len(listings) / (time.perf_counter() - started)
        for _ in range(300):  # up to 60 s for the stragglers
            if len(arrived) >= len(sent):
                break
            await asyncio.sleep(0.2)
        for task in listeners:
            task.cancel()
        latencies = [arrived[k] for k in sent if k in arrived]
        print(f"  offered {rate:.0f} sales/s, committed {committed_rate:.1f} sales/s")
        print(f"  purchase round trip (baseline)   {percentiles(round_trips)}")
        print(f"  commit -> socket                 {percentiles(latencies)}"
              f"  missing {len(sent) - len(latencies)}")


def _make_admin() -> dict[str, Any]:
    username = f"admin{uuid.uuid4().hex[:8]}"
    subprocess.run([sys.executable, "-m", "ops", "admin", "create", "--email",
                    f"{username}@example.com", "--username", username, "--password", PASSWORD],
                   check=True, capture_output=True)
    return {"username": username}


async def _run(api: str, admin: dict[str, Any], rate: float, seconds: float) -> None:
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        account = await _login(http, admin["username"])
    await _measure(api, account, rate, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="sales per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to buy")
    parser.add_argument("--workers", default="1,2", help="API process counts to run")
    args = parser.parse_args()
    for workers in (int(w) for w in args.workers.split(",")):
        print(f"ECE_API_WORKERS={workers}", flush=True)
        os.environ["ECE_API_WORKERS"] = str(workers)
        with throwaway_platform(*PARTS) as platform:
            asyncio.run(_run(platform.part("api").url, _make_admin(), args.rate, args.seconds))


if __name__ == "__main__":
    main()
