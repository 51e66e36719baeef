"""``ece check``: are PostgreSQL, the lake, Redis and the chain telling the same story?

One row per comparison (what, expected, found, verdict), then the details of any
disagreement; exit 0 when every comparison agrees, 1 when one disagrees or a
store could not be reached (named in the output), 2 for a bad option. The
comparisons are :mod:`quality.consistency`'s; the market figures come from the
API's database fallback and the chain from ``ece chain reconcile``'s
:func:`ops.cli.chain.run_reconcile` (docs/consistency.md).
"""

from __future__ import annotations

import asyncio
import sys

import typer
from rich.console import Console

from ece.settings import get_settings


def check(
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON (for machines)"),
    only: list[str] = typer.Option(  # noqa: B008 - typer's declaration style
        [], "--only", help="compare only these: lake (with CDC completeness), cards, market, "
                           "chain (repeatable)"),
    settle: float = typer.Option(
        5.0, min=0, max=600,
        help="seconds a difference may take to vanish (the stream is milliseconds behind "
             "a commit) before it counts as a disagreement"),
) -> None:
    """Compare PostgreSQL with the lake, CDC, Redis and the chain (exit 1 on a disagreement)."""
    from api.nfts.reconcile import DEFAULT_BATCH, DEFAULT_GRACE_SECONDS
    from ops.cli.chain import run_reconcile
    from orchestration.assets.consistency import market_runner
    from quality.consistency import chain, runner, table

    unknown = sorted(set(only) - set(runner.GROUPS))
    if unknown:
        typer.echo(f"error: unknown --only {', '.join(unknown)} "
                   f"(choose from {', '.join(runner.GROUPS)})", err=True)
        raise typer.Exit(2)
    settings = get_settings()
    progress = Console(stderr=True)
    selected = runner.comparisons(
        settings, settle_s=settle, only=only or runner.GROUPS,
        market=market_runner(settings, settle),
        chain=lambda: chain.compare(lambda: asyncio.run(
            run_reconcile(DEFAULT_BATCH, DEFAULT_GRACE_SECONDS, 4))))
    report = runner.run(selected, progress=None if as_json else
                        (lambda msg: progress.print(f"[dim]{msg}[/]")))
    if as_json:
        sys.stdout.write(table.as_json(report) + "\n")
    else:
        console = Console()
        if not console.is_terminal:  # piped or captured: never fold ids
            console = Console(width=220)
        table.render(report, console)
    if not report.ok:
        raise typer.Exit(1)
