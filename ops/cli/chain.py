"""``ece chain ...``: compare the database with the Solana chain on demand.

``ece chain reconcile`` checks every minted NFT (expected owner = the card
owner's custody address, supply 1), publishes each verdict to
``ece.chain.reconciliation`` and prints a summary table. It never repairs. Exit
codes make it usable from cron and CI: 0 all agree, 1 some NFT is ``mismatch`` or
``missing``, 2 the check itself could not run (database, RPC or broker down).
"""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from api.nfts.reconcile import DEFAULT_BATCH, DEFAULT_GRACE_SECONDS, ReconcileSummary

chain_app = typer.Typer(help="Compare the database with the Solana chain.",
                        no_args_is_help=True)


@chain_app.callback()
def _chain() -> None:
    """Chain commands (a callback keeps ``chain`` a group: ``ece chain reconcile``)."""


async def run_reconcile(
    batch: int, grace_seconds: float, concurrency: int
) -> ReconcileSummary:
    """One reconciliation pass with the configured database and RPC (CLI and `ece status`)."""
    from api.nfts.reconcile import reconcile_once
    from ece.settings import get_settings

    return await reconcile_once(get_settings(), batch=batch, grace_seconds=grace_seconds,
                                concurrency=concurrency)


def render(summary: ReconcileSummary, console: Console, show: int) -> None:
    """The summary table, then the first ``show`` disagreements."""
    table = Table(title=f"Chain reconciliation ({summary.seconds:.2f} s)")
    table.add_column("status")
    table.add_column("NFTs", justify="right")
    for label, value, style in (
        ("ok", summary.ok, "green"),
        ("mismatch", summary.mismatch, "red" if summary.mismatch else ""),
        ("missing", summary.missing, "red" if summary.missing else ""),
        ("in flight (transfer pending)", summary.in_flight, "yellow" if summary.in_flight else ""),
        ("checked", summary.checked, "bold"),
    ):
        table.add_row(label, str(value), style=style)
    console.print(table)
    if not summary.disagreements or show <= 0:
        return
    detail = Table(title="Disagreements")
    for column in ("status", "mint", "expected owner", "on-chain owner", "supply"):
        detail.add_column(column, no_wrap=True)
    for r in summary.disagreements[:show]:
        detail.add_row(r.status, r.mint_address, r.expected_owner or "-",
                       r.onchain_owner or "-", str(r.onchain_supply))
    console.print(detail)
    if len(summary.disagreements) > show:
        console.print(f"... and {len(summary.disagreements) - show} more (see the topic)")


@chain_app.command("reconcile")
def reconcile_command(
    batch: int = typer.Option(DEFAULT_BATCH, min=1, max=10_000, help="NFTs per database batch"),
    grace_seconds: float = typer.Option(
        DEFAULT_GRACE_SECONDS, min=0,
        help="a just-sold NFT whose transfer is pending this long is 'in flight', not a mismatch",
    ),
    concurrency: int = typer.Option(4, min=1, max=64, help="RPC calls in flight"),
    show: int = typer.Option(20, min=0, help="disagreements to list"),
) -> None:
    """Check every minted NFT against the chain (exit 1 on mismatch or missing, 2 on error)."""
    console = Console()
    if not console.is_terminal:  # piped or captured: never fold addresses
        console = Console(width=200)
    try:
        summary = asyncio.run(run_reconcile(batch, grace_seconds, concurrency))
    except Exception as exc:  # the reason, not a traceback: this is an operator tool
        typer.echo(f"error: reconciliation could not run: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(2) from None
    render(summary, console, show)
    if not summary.clean:
        raise typer.Exit(1)
