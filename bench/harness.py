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


def worker_pids(server_pid: int) -> list[int]:
    """The uvicorn worker processes under ``server_pid`` (itself when it has none): the
    processes that answer requests, whose CPU a benchmark charges to the API."""
    from bench.proc import tree

    pids = tree(server_pid)
    workers = [pid for pid in pids if pid != server_pid and _is_spawned_worker(pid)]
    return workers or [server_pid]


def _is_spawned_worker(pid: int) -> bool:
    """A multiprocessing child running the app (not uvicorn's resource tracker)."""
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def load_average() -> str:
    """The 1/5/15-minute load average, printed beside every figure (the box is shared)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


@contextmanager
def py_spy(pid: int, out_dir: Path | None, name: str, seconds: float) -> Iterator[None]:
    """Sample ``pid`` with py-spy for ``seconds`` while the block runs (nothing when
    ``out_dir`` is None): an SVG flame graph and the collapsed stacks beside it."""
    if out_dir is None:
        yield
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    base = [shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")]
    common = ["--pid", str(pid), "--duration", str(int(seconds)), "--rate", "250", "--nonblocking"]
    spies = [
        subprocess.Popen([*base, "record", *common, "-o", str(out_dir / f"{name}.svg")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([*base, "record", *common, "--format", "raw",
                          "-o", str(out_dir / f"{name}.txt")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        yield
    finally:
        for spy in spies:
            spy.wait(seconds + 60)


def top_frames(collapsed: str, count: int = 15, *, inclusive: bool = True
               ) -> list[tuple[str, float]]:
    """The frames with the largest share of samples in py-spy's collapsed output
    (``frame;frame;frame N`` per line), largest first: counted wherever they are on
    the stack (``inclusive``) or only when on top (self time)."""
    totals: dict[str, int] = {}
    samples = 0
    for line in collapsed.splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit() or not stack:
            continue
        samples += int(n)
        frames = set(stack.split(";")) if inclusive else {stack.split(";")[-1]}
        for frame in frames:
            totals[frame] = totals.get(frame, 0) + int(n)
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:count]
    return [(frame, 100 * n / max(samples, 1)) for frame, n in ranked]


def print_profile(collapsed: Path, count: int = 12) -> None:
    """The top frames of a py-spy capture, inclusive then self, for the report."""
    if not collapsed.exists():
        print(f"  (no profile at {collapsed}: py-spy failed?)")
        return
    text = collapsed.read_text()
    for title, inclusive in (("inclusive", True), ("self", False)):
        print(f"  top frames ({title}) of {collapsed.name}:")
        for frame, share in top_frames(text, count, inclusive=inclusive):
            print(f"    {share:5.1f}%  {frame[:150]}")
