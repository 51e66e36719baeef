"""Shared pieces of the benchmarks: a throwaway platform and a small HTTP load loop.

Benchmarks compare the system with a baseline measured in the same run on the
same machine, so the ratio means something even on a noisy 2-core box.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from ece.settings import Settings, get_settings
from ops.stack.supervisor import Platform, free_port_environment


@contextmanager
def throwaway_platform(*parts: str) -> Iterator[Platform]:
    """The named parts on free ports in a temporary data folder, stopped afterwards."""
    data_dir = Path(tempfile.mkdtemp(prefix="ece-bench-"))
    data_dir.chmod(0o755)
    os.environ.update({
        "ECE_ENV": "test",
        "ECE_DATA_DIR": str(data_dir),
        "ECE_RATE_LIMIT_ENABLED": "0",  # measure the work, not the limiter's refusals
        **free_port_environment(),
    })
    get_settings.cache_clear()
    platform = Platform(Settings(), progress=lambda msg: print(f"  [stack] {msg}", flush=True))
    try:
        platform.start(parts)
        yield platform
    finally:
        platform.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def baseline_server(app: str, workers: int, probe_path: str) -> Iterator[str]:
    """A bare FastAPI baseline (``module:app``) under uvicorn with the API's worker count,
    on a free port, answering ``probe_path``; yields its base URL, stops it afterwards."""
    from ops.stack.base import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", app, "--port", str(port),
                               "--workers", str(workers), "--no-access-log",
                               "--log-level", "warning"])
    base_url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(base_url + probe_path)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base_url
    finally:
        server.terminate()
        server.wait(10)


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    def line(self, label: str) -> str:
        return (f"{label:<28} {self.rps:9.0f} req/s  p50 {self.pct(0.5):6.1f} ms  "
                f"p99 {self.pct(0.99):6.1f} ms  errors {self.errors}")


async def _load(make_request: Callable[[httpx.AsyncClient], object], concurrency: int,
                seconds: float) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    response = await make_request(client)  # type: ignore[misc]
                    if response.status_code >= 400:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append((time.perf_counter() - t0) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return LoadResult(len(latencies), errors, elapsed, latencies)


def run_load(make_request: Callable[[httpx.AsyncClient], object], concurrency: int = 16,
             seconds: float = 10.0) -> LoadResult:
    return asyncio.run(_load(make_request, concurrency, seconds))


def percentiles(samples_ms: list[float]) -> str:
    ordered = sorted(samples_ms)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"p50 {statistics.median(ordered):.1f} ms  p99 {p99:.1f} ms  (n={len(ordered)})"
