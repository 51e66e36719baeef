"""P1: cached `GET /cards/{id}` against a bare FastAPI route doing the same lookup in raw
SQL, and against a JSON-only route (no I/O at all: the ceiling of uvicorn + FastAPI).

All three run under uvicorn with the same worker count, against the same database, in
the same run, one after the other, driven by ``wrk`` (C, one thread, pinned to one
CPU with ``taskset`` when asked, so the load generator does not compete for the
server's cores the way a Python client would). The ratios are what matter; the load
average printed beside each figure says how busy the shared machine was.

    apt-get install -y wrk     # Debian's package; the bench refuses to run without it
    uv run python -m bench.bench_p1_card_read [--seconds 10] [--connections 16] [--cpu 1]
        [--profile DIR]   # an extra, unmeasured run of the cached route under py-spy
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.harness import (
    baseline_server,
    load_average,
    print_profile,
    py_spy,
    throwaway_platform,
    worker_pids,
)
from ece.settings import Settings
from ops.seed import ensure_admin

WRK_MISSING = "wrk not found: install Debian's package with `apt-get install -y wrk`"

# wrk cycles through the card ids (one path per request) so every card is read.
WRK_SCRIPT = """
local ids = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "%s" .. ids[(i %% #ids) + 1])
end
"""


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int

    def line(self, label: str, load: str) -> str:
        return (f"{label:<30} {self.rps:9.0f} req/s  p50 {self.p50_ms:6.2f} ms  "
                f"p99 {self.p99_ms:6.2f} ms  errors {self.errors}   [{load}]")


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(output: str) -> WrkResult:
    """Requests/s, p50, p99 and failed requests from ``wrk --latency`` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    errors = 0
    if found := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        errors += int(found.group(1))
    if found := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                          output):
        errors += sum(int(n) for n in found.groups())
    return WrkResult(rps, p50, p99, errors)


def _wrk(base_url: str, path_prefix: str, ids: list[str], seconds: float, connections: int,
         cpu: int | None) -> WrkResult:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit(WRK_MISSING)
    with tempfile.TemporaryDirectory(prefix="ece-p1-") as tmp:
        script = Path(tmp) / "cards.lua"
        script.write_text(WRK_SCRIPT % (", ".join(f'"{i}"' for i in ids), path_prefix))
        argv = [wrk, "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency",
                "-s", str(script), base_url]
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu), *argv]
        out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return parse_wrk(out.stdout)


def _create_cards(settings: Settings, api: str, count: int) -> list[str]:
    login, password = ensure_admin(settings)
    with httpx.Client(base_url=api, timeout=10) as client:
        token = client.post("/auth/login", json={"login": login, "password": password}
                            ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        return [client.post("/cards", headers=headers, json={
            "name": f"Bench card {i}", "set_name": "Bench", "number": str(i), "rarity": "rare",
        }).json()["id"] for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--cpu", type=int, default=None,
                        help="pin wrk to this CPU with taskset (default: not pinned)")
    parser.add_argument("--profile", type=Path, help="py-spy one API worker into this folder")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit(WRK_MISSING)
    run = {"seconds": args.seconds, "connections": args.connections, "cpu": args.cpu}
    with throwaway_platform("api") as platform:
        api = platform.part("api").url
        ids = _create_cards(platform.settings, api, 100)
        origin = api.removesuffix("/api/v1")
        with baseline_server("bench.baseline_card_app:app", platform.settings.api_workers,
                             f"/cards/{ids[0]}") as base_url:
            for url, prefix in ((origin, "/api/v1/cards/"), (base_url, "/cards/"),
                                (base_url, "/json/")):  # warm caches, pools, both processes
                _wrk(url, prefix, ids, 2, args.connections, args.cpu)
            results = []
            for label, url, prefix in (
                ("GET /cards/{id} (cached)", origin, "/api/v1/cards/"),
                ("bare FastAPI + raw SQL", base_url, "/cards/"),
                ("bare FastAPI, JSON only", base_url, "/json/"),
            ):
                load = load_average()
                results.append((label, _wrk(url, prefix, ids, **run), load))
            if args.profile is not None:
                process = getattr(platform.part("api"), "process", None)
                server = process.proc.pid if process is not None and process.proc else 0
                with py_spy(worker_pids(server)[0], args.profile, "p1-card-read", args.seconds):
                    _wrk(origin, "/api/v1/cards/", ids, **run)
    print(f"P1 card read, wrk -t1 -c{args.connections}, {args.seconds:.0f} s each, "
          f"{platform.settings.api_workers} uvicorn worker(s), wrk pinned to CPU {args.cpu}")
    for label, result, load in results:
        print(result.line(label, load))
    ours, bare, ceiling = (r for _, r, _ in results)
    print(f"ratio cached / bare raw SQL: {ours.rps / bare.rps:.2f}   (issue 14 item 2: >= 2)")
    print(f"ratio cached / JSON only:    {ours.rps / ceiling.rps:.2f}")
    if args.profile is not None:
        print_profile(args.profile / "p1-card-read.txt")


if __name__ == "__main__":
    main()
