"""Bids on one hot auction through ``POST /auctions/{id}/bids``, and auction close lag.

Every bid on one auction queues on that auction's row lock (it must see the leader
the previous bid left, release that leader's hold and hold the new amount in one
transaction), so one hot auction is the API's worst case for bids: throughput is
bounded by one transaction at a time. The run measures it with one client (the
serial floor: pure latency) and with ``CLIENTS`` concurrent clients, each a
different funded bidder. Amounts come from one shared counter, so concurrent bids
carry distinct amounts and a bid that arrives after a higher one is refused with
``409 bid_too_low``: that refusal is correct handling (and costs a locked read), so
both ``accepted`` and ``handled`` rates are printed.

It then measures the auction closer: ``AUCTIONS_TO_CLOSE`` auctions with bids end
at the same moment, one ``python -m api.workers`` process settles them, and the lag
between ``ends_at`` and the settlement's audit event is reported (the contract says
within 2 s).

Rate limiting is switched off for the API (``ECE_RATE_LIMIT_ENABLED=0``): the
benchmark measures the bid path, not the limiter.

    uv run python -m bench.bench_bids
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from dataclasses import dataclass, field

import httpx
import psycopg

from bench.harness import LoadResult, throwaway_platform
from ece.settings import Settings
from ops.stack.workers import Workers

CLIENTS = 16
SECONDS = 10.0
WARMUP_SECONDS = 1.5
START_CENTS = 1_000
INCREMENT_CENTS = 1
FUNDS_CENTS = 10**11
AUCTIONS_TO_CLOSE = 20
PASSWORD = "bench-password-1"


@dataclass
class BidRun:
    accepted: int = 0
    too_low: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    accepted_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def as_load(self) -> LoadResult:
        return LoadResult(self.accepted + self.too_low + self.errors, self.errors,
                          self.seconds, self.latencies_ms)


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _setup(api: str, bidders: int) -> tuple[str, list[str], str, list[str]]:
    """(seller token, bidder tokens, admin token, bidder ids)."""
    from ops.cli.admin import _create  # the `ece admin create` service call

    asyncio.run(_create("bench@example.com", "bench", PASSWORD))
    with httpx.Client(base_url=api, timeout=30) as client:

        def account(name: str) -> tuple[str, str]:
            if name != "bench":
                r = client.post("/auth/register", json={
                    "email": f"{name}@example.com", "username": name, "password": PASSWORD})
                r.raise_for_status()
            r = client.post("/auth/login", json={"login": name, "password": PASSWORD})
            r.raise_for_status()
            me = client.get("/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
            return str(me.json()["id"]), str(r.json()["access_token"])

        _, admin = account("bench")
        _, seller = account("seller")
        ids, tokens = [], []
        for i in range(bidders):
            uid, token = account(f"bidder{i}")
            r = client.post("/admin/deposits", headers={"Authorization": f"Bearer {admin}"},
                            json={"user_id": uid, "amount_cents": FUNDS_CENTS,
                                  "reference": f"bench-{i}"})
            r.raise_for_status()
            ids.append(uid)
            tokens.append(token)
    return seller, tokens, admin, ids


def _auction(client: httpx.Client, admin: str, seller: str, seller_id: str) -> str:
    r = client.post("/cards", headers={"Authorization": f"Bearer {admin}"}, json={
        "name": "Hot Card", "set_name": "Bench", "number": "1", "rarity": "legendary",
        "owner_id": seller_id})
    r.raise_for_status()
    r = client.post("/auctions", headers={"Authorization": f"Bearer {seller}"}, json={
        "card_id": r.json()["id"], "start_price_cents": START_CENTS,
        "min_increment_cents": INCREMENT_CENTS, "duration_seconds": 30 * 24 * 3600})
    r.raise_for_status()
    return str(r.json()["id"])


async def _bid_load(api: str, auction_id: str, tokens: list[str], amounts: itertools.count[int],
                    seconds: float) -> BidRun:
    run = BidRun()
    limits = httpx.Limits(max_connections=len(tokens), max_keepalive_connections=len(tokens))
    async with httpx.AsyncClient(base_url=api, limits=limits, timeout=30) as client:
        deadline = time.perf_counter() + seconds

        async def bidder(token: str) -> None:
            headers = {"Authorization": f"Bearer {token}"}
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    r = await client.post(f"/auctions/{auction_id}/bids", headers=headers,
                                          json={"amount_cents": next(amounts)})
                    status, code = r.status_code, r.json().get("code")
                except httpx.HTTPError:
                    status, code = 0, None
                ms = (time.perf_counter() - t0) * 1000
                run.latencies_ms.append(ms)
                if status == 201:
                    run.accepted += 1
                    run.accepted_ms.append(ms)
                elif status == 409 and code == "bid_too_low":
                    run.too_low += 1
                else:
                    run.errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(bidder(t) for t in tokens))
        run.seconds = time.perf_counter() - started
    return run


def _report(label: str, run: BidRun) -> None:
    handled = run.accepted + run.too_low
    print(f"{label:<34} accepted {run.accepted / run.seconds:7.0f} bids/s  "
          f"handled {handled / run.seconds:7.0f} req/s  "
          f"p50 {_p(run.latencies_ms, 0.5):6.1f} ms  p99 {_p(run.latencies_ms, 0.99):6.1f} ms  "
          f"(accepted p99 {_p(run.accepted_ms, 0.99):6.1f} ms)  "
          f"too_low {run.too_low}  errors {run.errors}")


def _check(url: str, auction_ids: list[str], bidder_ids: list[str]) -> tuple[int, int, int]:
    """(ledger sum, held by bidders - leading bids, bids - bid_count) after the runs."""
    with psycopg.connect(url) as conn:
        ledger_sum, held, leading, bids, counted = conn.execute(
            "SELECT (SELECT coalesce(sum(balance_cents), 0) FROM ledger_accounts),"
            " (SELECT coalesce(sum(balance_cents), 0) FROM ledger_accounts"
            "   WHERE kind = 'user_held' AND user_id = ANY(%(b)s::uuid[])),"
            " (SELECT coalesce(sum(current_bid_cents), 0) FROM auctions"
            "   WHERE id = ANY(%(a)s::uuid[])),"
            " (SELECT count(*) FROM bids WHERE auction_id = ANY(%(a)s::uuid[])),"
            " (SELECT coalesce(sum(bid_count), 0) FROM auctions WHERE id = ANY(%(a)s::uuid[]))",
            {"a": auction_ids, "b": bidder_ids},
        ).fetchone()  # type: ignore[misc]
    return int(ledger_sum), int(held) - int(leading), int(bids) - int(counted)


def _close_lag(platform_settings: Settings, api: str, admin: str, seller: str, seller_id: str,
               bidder_tokens: list[str]) -> list[float]:
    """Seconds from ends_at to the settlement's audit event, for auctions ending together."""
    url = platform_settings.database_url
    with httpx.Client(base_url=api, timeout=30) as client:
        ids = []
        for i in range(AUCTIONS_TO_CLOSE):
            aid = _auction(client, admin, seller, seller_id)
            r = client.post(f"/auctions/{aid}/bids",
                            headers={"Authorization": f"Bearer {bidder_tokens[i % 4]}"},
                            json={"amount_cents": START_CENTS})
            r.raise_for_status()
            ids.append(aid)
    workers = Workers(platform_settings, args=["--only", "auctions"])
    workers.start()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE auctions SET ends_at = clock_timestamp() + interval '2 seconds'"
                         " WHERE id = ANY(%s::uuid[])", (ids,))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                ended = conn.execute("SELECT count(*) FROM auctions WHERE id = ANY(%s::uuid[])"
                                     " AND status = 'ended'", (ids,)).fetchone()
                if ended and ended[0] == len(ids):
                    break
                time.sleep(0.1)
            rows = conn.execute(
                "SELECT extract(epoch FROM e.at - a.ends_at) FROM audit_events e "
                "JOIN auctions a ON a.id::text = e.entity_id "
                "WHERE e.action = 'auction.settle' AND a.id = ANY(%s::uuid[])", (ids,),
            ).fetchall()
    finally:
        workers.stop()
    return [float(r[0]) for r in rows]


def main() -> None:
    os.environ["ECE_RATE_LIMIT_ENABLED"] = "0"
    with throwaway_platform("api") as platform:
        api = platform.part("api").url
        seller, tokens, admin, bidder_ids = _setup(api, CLIENTS)
        with httpx.Client(base_url=api, timeout=30) as client:
            seller_id = str(client.get(
                "/me", headers={"Authorization": f"Bearer {seller}"}).json()["id"])
            solo_auction = _auction(client, admin, seller, seller_id)
            hot_auction = _auction(client, admin, seller, seller_id)
        amounts = itertools.count(START_CENTS, INCREMENT_CENTS)
        asyncio.run(_bid_load(api, solo_auction, tokens[:1], amounts, WARMUP_SECONDS))
        solo = asyncio.run(_bid_load(api, solo_auction, tokens[:1], amounts, SECONDS))
        asyncio.run(_bid_load(api, hot_auction, tokens, amounts, WARMUP_SECONDS))
        hot = asyncio.run(_bid_load(api, hot_auction, tokens, amounts, SECONDS))
        ledger_sum, held_drift, count_drift = _check(
            platform.settings.database_url, [solo_auction, hot_auction], bidder_ids)
        lags = _close_lag(platform.settings, api, admin, seller, seller_id, tokens)
        uvicorn_workers = platform.settings.api_workers

    print(f"bids on one hot auction, {SECONDS:.0f} s per run, {uvicorn_workers} uvicorn "
          f"worker(s), rate limits off")
    _report("1 client (serial floor)", solo)
    _report(f"{CLIENTS} clients, {CLIENTS} bidders", hot)
    print(f"bid p99 latency under contention: {_p(hot.latencies_ms, 0.99):.1f} ms")
    print(f"after the runs: ledger sum {ledger_sum}, held - leading bids {held_drift}, "
          f"bid rows - bid_count {count_drift}")
    if lags:
        print(f"auction close lag ({len(lags)} auctions ending together, one worker): "
              f"median {_p(lags, 0.5) * 1000:.0f} ms  max {max(lags) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
