"""`ece up`, `ece down`, `ece status`: run the whole platform in the foreground."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ece.settings import Settings, get_settings
from ops.stack.base import PartFailed
from ops.stack.supervision import CrashLoop, Supervisor, read_state
from ops.stack.supervisor import (
    DEFAULT_ORDER,
    PARTS,
    Platform,
    externals_from_environment,
    free_port_environment,
)

console = Console(stderr=True)


def _pid_file(settings: Settings) -> Path:
    return settings.data_dir / "ece-up.pid"


def _urls(settings: Settings) -> dict[str, str]:
    return {
        "REST API": f"http://{settings.api_host}:{settings.api_port}/api/v1/docs",
        "Metrics": f"http://{settings.api_host}:{settings.api_port}/api/v1/metrics",
        "Flink UI": f"http://127.0.0.1:{settings.flink_rest_port}",
        "Dagster UI": f"http://127.0.0.1:{settings.dagster_port}",
        "Kafka bootstrap": settings.kafka_bootstrap,
        "Solana RPC": settings.solana_rpc_url,
        "Arweave gateway": settings.arweave_url,
        "PostgreSQL": settings.database_url,
        "Redis": settings.redis_url,
        "Logs": str(settings.logs_dir),
    }


def up(
    parts: list[str] = typer.Option(  # noqa: B008 - typer's declaration style
        list(DEFAULT_ORDER), "--part", "-p", help="start only these parts (and their dependencies)"
    ),
    free_ports: bool = typer.Option(
        False, "--free-ports", help="run every local part on a free port (a second instance)"
    ),
) -> None:
    """Start every part in order, print the URLs and stay in the foreground until Ctrl-C."""
    externals = externals_from_environment()
    if free_ports:
        # Into our own environment: Settings reads it and every child inherits it.
        os.environ.update(free_port_environment())
        get_settings.cache_clear()
        externals = set()
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    pid_file = _pid_file(settings)
    if pid_file.exists():
        other = int(pid_file.read_text())
        try:
            os.kill(other, 0)
            console.print(f"[red]ece up is already running (pid {other}); `make down` stops it")
            raise typer.Exit(1)
        except ProcessLookupError:
            pid_file.unlink()
    pid_file.write_text(str(os.getpid()))
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    platform = Platform(settings, externals,
                        progress=lambda msg: console.print(f"[cyan]•[/] {msg}"))
    supervisor = Supervisor(platform, say=lambda msg: console.print(f"[yellow]•[/] {msg}"))
    reason = "stopped (Ctrl-C or ece down)"
    started = time.monotonic()
    try:
        platform.start(parts)
        if settings.seed and "api" in parts:
            from ops.seed import seed_demo_data

            seed_demo_data(settings, say=lambda msg: console.print(f"[cyan]•[/] {msg}"))
        table = Table(title=f"ECE is up in {time.monotonic() - started:.1f}s (Ctrl-C stops it)")
        table.add_column("what")
        table.add_column("where")
        for name, url in _urls(settings).items():
            table.add_row(name, url)
        console.print(table)
        # A crashed part is restarted with backoff; only a crash loop stops everything.
        supervisor.run(lambda: stopping)
    except CrashLoop as loop:
        reason = str(loop)
        console.print(f"[red]{loop}")
        raise typer.Exit(1) from loop
    except PartFailed as failure:
        reason = str(failure).splitlines()[0]
        console.print(f"[red]{failure}")
        raise typer.Exit(1) from failure
    finally:
        platform.stop()
        supervisor.finish(reason)
        pid_file.unlink(missing_ok=True)
        console.print("[green]everything stopped")


def down(timeout: float = typer.Option(90.0, help="seconds to wait for a clean stop")) -> None:
    """Stop a running `ece up` (from another terminal)."""
    pid_file = _pid_file(get_settings())
    if not pid_file.exists():
        console.print("nothing running")
        return
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        console.print("nothing running (stale pid file removed)")
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            console.print("stopped")
            return
        time.sleep(0.3)
    console.print(f"[red]ece up (pid {pid}) did not stop within {timeout:.0f}s")
    raise typer.Exit(1)


def status() -> None:
    """Health of every part (exit 1 if any is unhealthy)."""
    settings = get_settings()
    platform = Platform(settings, externals_from_environment())
    supervised = read_state(settings) or {}
    records: dict[str, dict[str, object]] = supervised.get("parts") or {}
    table = Table(title="ECE status")
    for column in ("part", "healthy", "detail", "restarts", "last exit"):
        table.add_column(column)
    all_ok = True
    healthy: set[str] = set()
    for name in PARTS:
        if name == "migrate":
            continue
        try:
            ok, detail = platform.part(name).health()
        except Exception as exc:  # noqa: BLE001 - a missing part is reported, not raised
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        all_ok &= ok
        if ok:
            healthy.add(name)
        record = records.get(name, {})
        if record.get("state") == "restarting":
            detail += " (restarting)"
        last_exit = f"{record['last_exit']} at {record.get('last_exit_at')}" \
            if record.get("last_exit") else ""
        table.add_row(name, "[green]yes" if ok else "[red]no", detail,
                      str(record.get("restarts", "")), last_exit)
    if {"postgres", "solana"} <= healthy:
        ok, detail = _chain_agreement()
        all_ok &= ok
        table.add_row("chain reconciliation", "[green]yes" if ok else "[red]no", detail, "", "")
    if "postgres" in healthy:
        from quality.status import lake_summary

        ok, detail = lake_summary(settings)  # latest verdict of every quality check
        all_ok &= ok
        table.add_row("data quality", "[green]yes" if ok else "[red]no", detail, "", "")
    Console().print(table)
    if supervised.get("stopped_reason") and not supervised.get("supervisor_pid"):
        Console().print(f"last `ece up` ended: {supervised['stopped_reason']}")
    if not all_ok:
        raise typer.Exit(1)


def _chain_agreement() -> tuple[bool, str]:
    """Database and chain agree on every minted NFT (mismatches are shown, never repaired)."""
    import asyncio

    from api.nfts.reconcile import DEFAULT_BATCH, DEFAULT_GRACE_SECONDS
    from ops.cli.chain import run_reconcile

    try:
        summary = asyncio.run(run_reconcile(DEFAULT_BATCH, DEFAULT_GRACE_SECONDS, 4))
    except Exception as exc:  # noqa: BLE001 - reported in the table
        return False, f"could not reconcile: {type(exc).__name__}: {exc}"
    detail = (f"{summary.ok} ok, {summary.mismatch} mismatch, {summary.missing} missing, "
              f"{summary.in_flight} in flight")
    return summary.clean, detail
