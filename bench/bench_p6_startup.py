"""P6: `ece up` (what `make up` runs, installs already present) to ready, idle memory, stop.

Baseline: the same platform's PostgreSQL alone, started by the same supervisor
in the same run, so the ratio shows what the other parts add. Idle figures per
part: PSS (``ops.demo.memory``, shared pages counted once) and CPU over a quiet
minute (``--idle-seconds``), as a share of one core, from each part's process group.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.proc import cpu_seconds, listening_ports_of, tree
from ece.settings import Settings
from ops.demo.memory import platform_pss
from ops.stack.base import live_group_members
from ops.stack.supervision import read_state

IDLE_S = 60.0


def _environment(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "ECE_SEED": "0", "ECE_DATA_DIR": str(data_dir)}


def _groups(data_dir: Path) -> dict[str, list[int]]:
    """Each part's live process group, from the supervisor's state file."""
    state = read_state(Settings(data_dir=data_dir)) or {}
    return {name: live_group_members(record["pid"]) or [record["pid"]]
            for name, record in sorted((state.get("parts") or {}).items())
            if isinstance(record.get("pid"), int)}


def _idle_cpu(data_dir: Path, seconds: float) -> dict[str, float]:
    """Share of one core each part used over ``seconds`` of doing nothing."""
    before = {name: cpu_seconds(pids) for name, pids in _groups(data_dir).items()}
    time.sleep(seconds)
    after = {name: cpu_seconds(pids) for name, pids in _groups(data_dir).items()}
    return {name: max(0.0, after.get(name, 0.0) - spent) / seconds
            for name, spent in before.items()}


Figures = tuple[float, dict[str, int], dict[str, float], float, set[int]]


def _up(args: list[str], idle_s: float) -> Figures:
    """Start `ece up`, wait for ready; return (seconds, idle PSS KiB per part, idle CPU per
    part, stop seconds, ports left)."""
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
    cpu = _idle_cpu(data_dir, idle_s)
    memory = platform_pss(Settings(data_dir=data_dir))
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(180)
    stop = time.monotonic() - t0
    left = listening_ports_of(pids)
    shutil.rmtree(data_dir, ignore_errors=True)
    return ready, memory, cpu, stop, left


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=IDLE_S,
                        help="how long the quiet platform is watched for its CPU")
    parser.add_argument("--up-args", default="",
                        help="more `ece up` arguments for the whole platform (e.g. parts)")
    args = parser.parse_args()
    idle_s = args.idle_seconds
    full = _up(args.up_args.split(), idle_s)
    base = _up(["--part", "postgres"], idle_s)
    print("P6 platform start (installed, cold data dir), idle memory and CPU, stop")
    for name in full[1]:
        print(f"  {name:14s} idle PSS {full[1][name] / 1024:7.0f} MiB, "
              f"CPU {full[2].get(name, 0.0) * 100:5.1f}% of one core")
    pss = {label: sum(f[1].values()) / 1024 for label, f in (("full", full), ("base", base))}
    cpu = {label: sum(f[2].values()) for label, f in (("full", full), ("base", base))}
    print(f"  whole platform : ready in {full[0]:6.1f} s, idle PSS {pss['full']:7.0f} MiB, "
          f"idle CPU {cpu['full'] * 100:5.1f}% of one core, stopped in {full[3]:4.1f} s, "
          f"ports left listening: {sorted(full[4]) or 'none'}")
    print(f"  postgres alone : ready in {base[0]:6.1f} s, idle PSS {pss['base']:7.0f} MiB, "
          f"idle CPU {cpu['base'] * 100:5.1f}% of one core, stopped in {base[3]:4.1f} s")
    print(f"  ratio (platform / postgres alone): start {full[0] / base[0]:.1f}x, "
          f"memory {pss['full'] / pss['base']:.1f}x, "
          f"CPU {cpu['full'] / max(cpu['base'], 1e-3):.0f}x")
    print("  goals: up <= 45 s, idle PSS <= 1536 MiB, idle CPU <= 10% of one core")


if __name__ == "__main__":
    main()
