"""P5: NFTs minted end to end per second, and how fast a sold token reaches its buyer.

* End to end = ``POST /cards/{id}/nft`` (202) until the NFT row says ``minted``:
  uvicorn -> Postgres -> Debezium -> Kafka -> mint saga worker -> Arweave upload
  (arlocal) -> Token-2022 mint over JSON-RPC (the local LiteSVM node) -> Postgres.
  Compared with the raw LiteSVM mint rate measured in the same run, in-process
  (``bench.bench_solana_mint.raw_litesvm``: the VM alone, the ceiling), and with raw
  gateway uploads in the same run (one transaction per document, and one ANS-104
  bundle of ``BUNDLE_ITEMS`` documents). CPU per NFT is given per process (API,
  saga, CDC, gateway node, chain node, ...), and py-spy profiles of the saga and of
  the transfer worker during the mint phase show where their time goes.
* Sale -> token: from the 201 of ``POST /listings/{id}/purchase`` until the buyer's
  custody address holds the token on chain (polled with getMultipleAccounts on the
  buyers' associated token accounts every 20 ms), through the chain transfer worker.

The workers run as their own processes (``python -m api.workers.mint_saga`` and
``... chain_transfers``), as in production. Prints, asserts nothing.

    uv run python -m bench.bench_p5_mint
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import resource
import shutil
import statistics
import struct
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
from confluent_kafka import Consumer
from solders.pubkey import Pubkey

from api.integrations.solana import associated_token_address
from bench.bench_arweave_upload import raw_gateway
from bench.bench_solana_mint import node_capacity, raw_litesvm
from bench.harness import load_average, print_profile, py_spy, throwaway_platform
from bench.proc import cpu_seconds, tree
from ece.contracts.topics import cdc_topic
from ece.kafka import consumer_config
from ece.settings import Settings
from ops.stack.base import ManagedProcess

PARTS = ("postgres", "redis", "broker", "migrate", "api", "cdc", "solana", "arweave")
USERS = 8
MINTS = 1000
MINT_CONCURRENCY = 32
BUNDLE_ITEMS = 100
PROFILE_SECONDS = 15  # py-spy samples both workers over the first seconds of the mint phase
SALES = 60
SALES_PER_SECOND = 10.0  # open loop, below the transfer worker's capacity: latency, not queueing
PASSWORD = "bench-password-1"


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


GROUPS: dict[str, int] = {}  # label -> process group id (each part runs in its own session)


def cpu() -> dict[str, float]:
    """User+system CPU seconds so far of every part, worker, and this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out = {"bench client": usage.ru_utime + usage.ru_stime}
    for label, pgid in GROUPS.items():
        out[label] = cpu_seconds(tree(pgid))
    return out


def cpu_since(before: dict[str, float]) -> dict[str, float]:
    """CPU seconds of every part used since ``before`` (a :func:`cpu` reading)."""
    return {label: used - before.get(label, 0.0) for label, used in cpu().items()}


def per_item(used: dict[str, float], items: int) -> str:
    """``used`` as milliseconds per item by process, the busiest first."""
    return ", ".join(f"{label} {seconds * 1000 / items:.0f}"
                     for label, seconds in sorted(used.items(), key=lambda kv: -kv[1]))


def start_workers(settings: Settings) -> list[ManagedProcess]:
    procs = []
    for name in ("mint_saga", "chain_transfers"):
        proc = ManagedProcess(name, [sys.executable, "-m", f"api.workers.{name}"],
                              settings.logs_dir / f"bench-{name}.log")
        GROUPS[name] = proc.start().pid
        procs.append(proc)
    return procs


class Bench:
    def __init__(self, settings: Settings, api: str) -> None:
        self.settings = settings
        self.http = httpx.AsyncClient(base_url=api, timeout=60,
                                      limits=httpx.Limits(max_connections=32))
        self.admin: dict[str, str] = {}
        self.users: list[dict[str, str]] = []  # id, token, custody

    async def accounts(self) -> None:
        from ops.cli.admin import _create

        await _create("p5@example.com", "p5admin", PASSWORD)
        self.admin = {"Authorization": f"Bearer {await self.login('p5admin')}"}
        for i in range(USERS):
            name = f"p5user{i}"
            r = await self.http.post("/auth/register", json={
                "email": f"{name}@example.com", "username": name, "password": PASSWORD})
            r.raise_for_status()
            token = await self.login(name)
            me = (await self.http.get("/me", headers={"Authorization": f"Bearer {token}"})).json()
            r = await self.http.post("/admin/deposits", headers=self.admin, json={
                "user_id": me["id"], "amount_cents": 10**11, "reference": f"p5-{me['id']}"})
            r.raise_for_status()
            self.users.append({"id": me["id"], "token": token,
                               "custody": me["custody_address"]})

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """POST, once more after a dropped keep-alive connection (a loaded box closes
        idle connections as the client reuses them; the caller handles a duplicate)."""
        try:
            return await self.http.post(path, **kwargs)
        except httpx.TransportError:
            await asyncio.sleep(0.5)
            return await self.http.post(path, **kwargs)

    async def login(self, name: str) -> str:
        r = await self.http.post("/auth/login", json={"login": name, "password": PASSWORD})
        r.raise_for_status()
        return str(r.json()["access_token"])

    def auth(self, user: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.users[user]['token']}"}

    async def cards(self, count: int) -> list[tuple[str, int]]:
        """``count`` cards, owned round-robin by the users: (card id, owner index)."""
        out: list[tuple[str, int]] = []
        gate = asyncio.Semaphore(16)

        async def one(i: int) -> None:
            async with gate:
                r = await self.post("/cards", headers=self.admin, json={
                    "name": f"P5 Card {i}", "set_name": "Bench", "number": str(i),
                    "rarity": "rare", "owner_id": self.users[i % USERS]["id"],
                    "attributes": {"i": i}})
                r.raise_for_status()
                out.append((r.json()["id"], i % USERS))

        await asyncio.gather(*(one(i) for i in range(count)))
        return out

    async def mint_all(self, cards: list[tuple[str, int]]) -> dict[str, Any]:
        """Request every mint (bounded concurrency) and wait until all are minted."""
        started: dict[str, float] = {}
        nft_of: dict[str, str] = {}
        gate = asyncio.Semaphore(MINT_CONCURRENCY)

        async def request(card_id: str, owner: int) -> None:
            async with gate:
                t = time.time()
                r = await self.post(f"/cards/{card_id}/nft", headers=self.auth(owner))
                if r.status_code == 409:  # a retried request whose first copy got through
                    r = await self.http.get(f"/cards/{card_id}/nft")
                r.raise_for_status()
                started[r.json()["id"]] = t
                nft_of[card_id] = r.json()["id"]

        t0 = time.time()
        await asyncio.gather(*(request(c, o) for c, o in cards))
        requested = time.time() - t0
        done = await self.wait_minted(list(started), within=900)
        latencies = [(done[n][0] - started[n]) * 1000 for n in started]
        failed = [n for n in started if done[n][1] != "minted"]
        end = max(at for at, _, _ in done.values())
        async with await psycopg.AsyncConnection.connect(self.settings.database_url) as conn:
            rows = await (await conn.execute(
                "SELECT nft_id::text, extract(epoch FROM created_at)::float8 FROM "
                "nft_transactions WHERE kind = 'mint' AND nft_id = ANY(%s::uuid[])",
                (list(started),))).fetchall()
        chain_step = {n: at for n, at in rows}
        uploaded = [(chain_step[n] - started[n]) * 1000 for n in started if n in chain_step]
        on_chain = [(done[n][0] - chain_step[n]) * 1000 for n in started if n in chain_step]
        return {"seconds": end - t0, "requested": requested, "latencies": latencies,
                "failed": len(failed),
                "nft_of": nft_of, "mints": {n: done[n][2] for n in done},
                "uploaded": uploaded, "on_chain": on_chain}

    async def wait_minted(
        self, ids: list[str], within: float
    ) -> dict[str, tuple[float, str, str]]:
        """nft id -> (time it became minted/failed (DB clock), status, mint address)."""
        deadline = time.monotonic() + within
        done: dict[str, tuple[float, str, str]] = {}
        async with await psycopg.AsyncConnection.connect(self.settings.database_url,
                                                         autocommit=True) as conn:
            while len(done) < len(ids):
                rows = await (await conn.execute(
                    "SELECT id::text, extract(epoch FROM updated_at)::float8, status, "
                    "coalesce(mint_address, '') FROM nfts WHERE id = ANY(%s::uuid[]) "
                    "AND status IN ('minted', 'failed')", (ids,))).fetchall()
                for nft_id, at, status, mint in rows:
                    done.setdefault(nft_id, (at, status, mint))
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {len(done)}/{len(ids)} NFTs finished")
                await asyncio.sleep(0.05)
        return done

    async def sales(
        self, cards: list[tuple[str, int]], mints: dict[str, str]
    ) -> tuple[list[float], list[float], list[float]]:
        """Sell each card to the next user: ms from the sale's 201 to the token at the buyer,
        from the sale's commit to the worker claiming its transfer (the wake-up), and
        from the commit to its change event on the topic (the CDC share of the wake-up)."""
        watching: dict[Pubkey, float] = {}
        sale_ids: list[str] = []
        arrived: list[float] = []
        finished = asyncio.Event()

        async def sell(card_id: str, seller: int, delay: float) -> None:
            buyer = (seller + 1) % USERS
            await asyncio.sleep(delay)
            r = await self.http.post("/listings", headers=self.auth(seller),
                                     json={"card_id": card_id, "price_cents": 1000})
            r.raise_for_status()
            r = await self.http.post(f"/listings/{r.json()['id']}/purchase",
                                     headers=self.auth(buyer))
            r.raise_for_status()
            at = time.time()
            sale_ids.append(r.json()["id"])
            ata = associated_token_address(Pubkey.from_string(self.users[buyer]["custody"]),
                                           Pubkey.from_string(mints[card_id]))
            watching[ata] = at

        async def poll() -> None:
            async with httpx.AsyncClient(timeout=10) as rpc:
                while not (finished.is_set() and not watching):
                    keys = list(watching)[:100]
                    if keys:
                        r = await rpc.post(self.settings.solana_rpc_url, json={
                            "jsonrpc": "2.0", "id": 1, "method": "getMultipleAccounts",
                            "params": [[str(k) for k in keys], {"encoding": "base64"}]})
                        now = time.time()
                        for key, value in zip(keys, r.json()["result"]["value"], strict=True):
                            if value is None:
                                continue
                            data = base64.b64decode(value["data"][0])
                            if struct.unpack_from("<Q", data, 64)[0] == 1:
                                arrived.append((now - watching.pop(key)) * 1000)
                    await asyncio.sleep(0.02)

        poller = asyncio.create_task(poll())
        await asyncio.gather(*(sell(c, o, i / SALES_PER_SECOND)
                               for i, (c, o) in enumerate(cards)))
        finished.set()
        await asyncio.wait_for(poller, 120)
        async with await psycopg.AsyncConnection.connect(self.settings.database_url) as conn:
            rows = await (await conn.execute(
                "SELECT h.id::text, extract(epoch FROM s.created_at)::float8, "
                "extract(epoch FROM t.created_at - s.created_at)::float8 * 1000 "
                "FROM sales s JOIN card_history h ON h.reference_id = s.id "
                "JOIN nft_transactions t ON t.card_history_id = h.id "
                "WHERE s.id = ANY(%s::uuid[])", (sale_ids,))).fetchall()
        on_topic = await asyncio.to_thread(self.topic_times, {h for h, _, _ in rows})
        to_topic = [(on_topic[h] - at) * 1000 for h, at, _ in rows if h in on_topic]
        return arrived, [ms for _, _, ms in rows], to_topic

    def topic_times(self, history_ids: set[str]) -> dict[str, float]:
        """When each history row's change event reached ``card_history`` (the CDC
        producer's timestamp), read back from the start with a throwaway group."""
        consumer = Consumer(consumer_config(self.settings, f"bench-p5-{uuid.uuid4()}",
                                            auto_commit=False))
        consumer.subscribe([cdc_topic("card_history", self.settings.topic_prefix)])
        found: dict[str, float] = {}
        deadline = time.monotonic() + 30
        try:
            while len(found) < len(history_ids) and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None or message.error() is not None:
                    continue
                raw = message.value()
                if not raw:
                    continue
                after = json.loads(raw).get("after") or {}
                if after.get("id") in history_ids:
                    found.setdefault(after["id"], message.timestamp()[1] / 1000)
        finally:
            consumer.close()
        return found


async def run(settings: Settings, api: str) -> float:
    """The whole measurement; returns the end-to-end NFTs/s."""
    bench = Bench(settings, api)
    try:
        await bench.accounts()
        warm = await bench.cards(2)
        await bench.mint_all(warm)  # workers connected, payer airdropped, caches warm
        cards = await bench.cards(MINTS)
        load = load_average()
        profile = Path(tempfile.mkdtemp(prefix="ece-p5-profile-"))
        cpu_before = cpu()
        with py_spy(GROUPS["mint_saga"], profile, "saga", PROFILE_SECONDS), \
                py_spy(GROUPS["chain_transfers"], profile, "transfers", PROFILE_SECONDS), \
                py_spy(GROUPS["api"], profile, "api", PROFILE_SECONDS):
            result = await bench.mint_all(cards)
            cpu_used = cpu_since(cpu_before)
        rate = MINTS / result["seconds"]
        print(f"\nend to end: {MINTS} NFTs in {result['seconds']:.1f} s = {rate:.1f} NFTs/s "
              f"({MINT_CONCURRENCY} requests in flight), failed {result['failed']}, "
              f"{load} before")
        print(f"  the {MINTS} API requests alone took {result['requested']:.1f} s "
              f"({MINTS / result['requested']:.0f} requests/s)")
        for label, key in (("request -> minted", "latencies"),
                           ("request -> uploaded (mint step starts)", "uploaded"),
                           ("mint step -> minted (chain)", "on_chain")):
            print(f"  {label}: p50 {pct(result[key], 0.5):.0f} ms, "
                  f"p99 {pct(result[key], 0.99):.0f} ms")
        total = sum(cpu_used.values())
        print(f"  CPU during the mint phase: {total:.1f} s on {os.cpu_count()} cores "
              f"({total / result['seconds']:.2f} cores busy), ms per NFT by process: "
              + per_item(cpu_used, MINTS))
        for name, title in (("saga", "the saga"), ("transfers", "the transfer worker"),
                            ("api", "the API")):
            print(f"profile of {title}, first {PROFILE_SECONDS} s of the mint phase ({profile}):")
            print_profile(profile / f"{name}.txt")
        single, bundled = await raw_gateway(settings.arweave_url, BUNDLE_ITEMS)
        print(f"raw gateway uploads (same run): {single:.1f} docs/s one transaction each "
              f"(4 in flight), {bundled:.1f} docs/s as one bundle of {BUNDLE_ITEMS} "
              f"(signing included)")
        node = await asyncio.to_thread(node_capacity, settings.solana_rpc_url)
        print(f"raw chain node (same run): {node:.0f} mints/s (pre-signed, one socket)")
        mints = {c: result["mints"][result["nft_of"][c]] for c, _ in cards}
        sold = cards[:SALES]
        await asyncio.sleep(1)
        cpu_before = cpu()
        with py_spy(GROUPS["chain_transfers"], profile, "transfers-sales", PROFILE_SECONDS):
            latencies, woke, to_topic = await bench.sales(sold, mints)
            cpu_used = cpu_since(cpu_before)
        print(f"sale -> token at the buyer: {len(latencies)} sales at {SALES_PER_SECOND:g}/s, p50 "
              f"{pct(latencies, 0.5):.0f} ms, p99 {pct(latencies, 0.99):.0f} ms, "
              f"max {max(latencies):.0f} ms, mean {statistics.mean(latencies):.0f} ms")
        print(f"  sale commit -> transfer claimed by the worker: p50 {pct(woke, 0.5):.0f} ms, "
              f"p99 {pct(woke, 0.99):.0f} ms; of that, commit -> change event on the topic "
              f"(CDC): p50 {pct(to_topic, 0.5):.0f} ms, p99 {pct(to_topic, 0.99):.0f} ms "
              f"({len(to_topic)} events found)")
        print("  CPU per sale by process (ms; sale, CDC, transfer, chain): "
              + per_item(cpu_used, len(sold)))
        print(f"profile of the transfer worker, first {PROFILE_SECONDS} s of the sales:")
        print_profile(profile / "transfers-sales.txt")
        return rate
    finally:
        await bench.http.aclose()


def main() -> None:
    print("P5: NFT mint saga end to end vs raw LiteSVM mints (same run, same machine)")
    raw_full, raw_presigned = raw_litesvm()
    print(f"raw LiteSVM in-process: {raw_full:.0f} mints/s (build + sign + execute), "
          f"{raw_presigned:.0f} mints/s (execute pre-signed)")
    with throwaway_platform(*PARTS) as platform:
        settings = platform.settings
        for part in platform.started:
            if part.process is not None and part.process.proc is not None:
                GROUPS[part.name] = part.process.proc.pid
        workers = start_workers(settings)
        try:
            rate = asyncio.run(run(settings, str(platform.part("api").url)))
        finally:
            for proc in workers:
                proc.stop()
            kept = Path(tempfile.gettempdir()) / "ece-bench-p5-logs"
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(settings.logs_dir, kept)
            print(f"logs kept in {kept}")
    print(f"ratio end to end / raw LiteSVM: {rate / raw_full:.3f} "
          f"({rate:.1f} vs {raw_full:.0f} NFTs/s)")


if __name__ == "__main__":
    main()
