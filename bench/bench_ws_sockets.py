"""Idle ``/ws`` sockets held by one API process: how many, and the memory each costs.

Opens N idle sockets (spread over a few users, as many clients per user as a
household of tabs would) to one uvicorn process, in steps, and reports after each
step the sockets held and the process's resident memory, absolute and per socket
over the empty baseline. With everything open it then measures what matters for
a user: one notification to each user, the time from its commit to its socket.

    uv run python -m bench.bench_ws_sockets [N1 N2 ...]     (default 1000 2000)
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from bench.harness import throwaway_platform
from bench.proc import rss_mib, tree
from tests.support.apitest import register_and_login
from tests.support.notifytest import produce

USERS = 20
OPEN_CONCURRENCY = 50


async def _open(url: str, gate: asyncio.Semaphore) -> ClientConnection:
    async with gate:
        return await connect(url, open_timeout=60, ping_interval=None, max_queue=4)


async def _first_notification(ws: ClientConnection, timeout: float) -> float:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        if message["type"] == "notification":
            return time.monotonic()


async def run(steps: list[int]) -> None:
    with throwaway_platform("api") as platform:
        settings = platform.settings
        api = platform.part("api")
        assert api.process is not None and api.process.proc is not None
        pid = api.process.proc.pid
        base = str(api.url)
        ws_base = base.replace("http://", "ws://") + "/ws"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            users = [await register_and_login(client) for _ in range(USERS)]
        await asyncio.sleep(1)
        baseline = rss_mib(tree(pid))
        print(f"one API process (pid {pid}), {USERS} users; baseline RSS {baseline:.1f} MiB")
        print(f"{'sockets':>8} {'RSS MiB':>9} {'KiB/socket':>11} {'open s':>7}")
        sockets: list[ClientConnection] = []
        owners: list[Any] = []
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)
        try:
            for target in steps:
                started = time.monotonic()
                wanted = range(len(sockets), target)
                batch_owners = [users[i % USERS] for i in wanted]
                sockets += await asyncio.gather(*(
                    _open(f"{ws_base}?token={u.access}", gate) for u in batch_owners))
                owners += batch_owners
                took = time.monotonic() - started
                await asyncio.sleep(3)  # let the process settle (and a sweep run)
                held = sum(1 for ws in sockets if ws.close_code is None)
                rss = rss_mib(tree(pid))
                per = (rss - baseline) * 1024 / max(held, 1)
                print(f"{held:>8} {rss:>9.1f} {per:>11.1f} {took:>7.1f}")

            # One notification per user, with every socket open: commit -> socket.
            latencies: list[float] = []
            for user in users:
                mine = [ws for ws, o in zip(sockets, owners, strict=True) if o is user]
                started = time.monotonic()
                produce(settings, user.id)
                arrived = await asyncio.gather(*(_first_notification(ws, 10) for ws in mine))
                latencies += [(t - started) * 1000 for t in arrived]
            latencies.sort()
            p99 = latencies[int(len(latencies) * 0.99) - 1]
            print(f"notification commit -> socket over {len(latencies)} sockets: "
                  f"p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms, "
                  f"max {latencies[-1]:.1f} ms")
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def main() -> None:
    steps = [int(a) for a in sys.argv[1:]] or [1000, 2000]
    asyncio.run(run(sorted(steps)))


if __name__ == "__main__":
    main()
