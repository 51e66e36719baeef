"""P6: `ece up` (what `make up` runs, installs already present) to ready, idle memory, stop.

Baseline: the same platform's PostgreSQL alone, started by the same supervisor
in the same run, so the ratio shows what the other parts add.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.proc import listening_ports_of, rss_mib, tree


def _environment(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "ECE_SEED": "0", "ECE_DATA_DIR": str(data_dir)}


def _up(args: list[str]) -> tuple[float, float, float, set[int]]:
    """Start `ece up`, wait for ready; return (seconds, idle RSS MiB, stop seconds, ports left)."""
    data_dir = Path(tempfile.mkdtemp(prefix="ece-p6-"))
    data_dir.chmod(0o755)
    env = _environment(data_dir)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "ops", "up", "--free-ports", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    ready = None
    for line in proc.stdout:
        if "ECE is up" in line:
            ready = time.monotonic() - started
            break
        if re.search(r"failed", line):
            print(line.rstrip())
    if ready is None:
        raise SystemExit("ece up did not become ready")
    time.sleep(20)  # settle: JIT warm-up, Dagster's daemon loop
    pids = tree(proc.pid)
    memory = rss_mib(pids)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(180)
    stop = time.monotonic() - t0
    left = listening_ports_of(pids)
    shutil.rmtree(data_dir, ignore_errors=True)
    return ready, memory, stop, left


def main() -> None:
    full = _up([])
    base = _up(["--part", "postgres"])
    print("P6 platform start (installed, cold data dir), idle memory, stop")
    print(f"  whole platform : ready in {full[0]:6.1f} s, idle RSS {full[1]:7.0f} MiB, "
          f"stopped in {full[2]:4.1f} s, ports left listening: {sorted(full[3]) or 'none'}")
    print(f"  postgres alone : ready in {base[0]:6.1f} s, idle RSS {base[1]:7.0f} MiB, "
          f"stopped in {base[2]:4.1f} s")
    print(f"  ratio (platform / postgres alone): start {full[0] / base[0]:.1f}x, "
          f"memory {full[1] / base[1]:.1f}x")


if __name__ == "__main__":
    main()
