"""Read throughput of ``GET /leaderboards/traders`` against a bare Redis ``ZREVRANGE``
served by a bare FastAPI route under the same uvicorn (not a test: prints figures).

The traders board is written in the contract's Redis layout (:mod:`ece.contracts.
market_data`) for ``--users`` registered users, with the writer's ready marker set,
so the API answers from the hot set (checked: ``X-Data-Source: hot``). Both servers
run with the same worker count and are driven by the same load loop in the same run.

    uv run python -m bench.bench_leaderboard_read [--users 50] [--limit 50] [--seconds 10]
"""

from __future__ import annotations

import argparse
import random
import time
import uuid

import httpx
import redis

from bench.harness import baseline_server, run_load, throwaway_platform
from ece.contracts import market_data as md
from ece.contracts.realtime import iso_millis

CONCURRENCY = 16


def _register(api: str, count: int) -> list[str]:
    with httpx.Client(base_url=api, timeout=30) as client:
        ids = []
        for _ in range(count):
            name = f"t{uuid.uuid4().hex[:10]}"
            r = client.post("/auth/register", json={"email": f"{name}@example.com",
                                                    "username": name, "password": "bench-pass-1"})
            r.raise_for_status()
            ids.append(r.json()["id"])
        return ids


def _seed_board(redis_url: str, user_ids: list[str]) -> None:
    client = redis.Redis.from_url(redis_url)
    client.zadd(md.leaderboard_key("traders"),
                {u: random.randint(1_000, 10_000_000) for u in user_ids})
    client.set(md.READY_KEY, iso_millis(int(time.time() * 1000)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50, help="traders on the board")
    parser.add_argument("--limit", type=int, default=50, help="entries per read")
    parser.add_argument("--seconds", type=float, default=10.0, help="load per side")
    args = parser.parse_args()
    with throwaway_platform("api") as platform:
        api = platform.part("api").url
        print(f"  registering {args.users} traders ...", flush=True)
        _seed_board(platform.settings.redis_url, _register(api, args.users))
        path = f"/leaderboards/traders?limit={args.limit}"
        r = httpx.get(api + path)
        assert r.headers["x-data-source"] == "hot", "the API did not answer from the hot set"
        assert len(r.json()["entries"]) == min(args.users, args.limit)
        with baseline_server("bench.baseline_leaderboard_app:app",
                             platform.settings.api_workers, path) as base_url:
            run_load(lambda c: c.get(api + path), CONCURRENCY, 2)  # warm both
            run_load(lambda c: c.get(base_url + path), CONCURRENCY, 2)
            ours = run_load(lambda c: c.get(api + path), CONCURRENCY, args.seconds)
            base = run_load(lambda c: c.get(base_url + path), CONCURRENCY, args.seconds)
    print(f"leaderboard read, top {args.limit} of {args.users}, {CONCURRENCY} concurrent "
          f"clients, {args.seconds:.0f} s each, {platform.settings.api_workers} worker(s)")
    print(ours.line("GET /leaderboards/traders"))
    print(base.line("bare FastAPI + ZREVRANGE"))
    print(f"ratio (ours / baseline): {ours.rps / base.rps:.2f}")


if __name__ == "__main__":
    main()
