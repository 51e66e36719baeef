"""The report as people read it (a rich table, like the other ``ece`` commands) and as JSON."""

from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from quality.consistency.model import AGREE, DISAGREE, Report

STYLE = {AGREE: "green", DISAGREE: "bold red"}


def render(report: Report, console: Console) -> None:
    table = Table(title=f"Consistency across stores ({report.seconds:.2f} s)")
    for column in ("store", "what", "expected", "found", "verdict"):
        table.add_column(column, overflow="fold")
    for r in report.rows:
        style = STYLE.get(r.verdict, "bold yellow")
        table.add_row(r.store, escape(r.what), escape(r.expected), escape(r.found),
                      f"[{style}]{r.verdict}[/]")
    console.print(table)
    notes = [r for r in report.rows if r.detail and (not r.ok or r.store == "lake")]
    for r in notes:
        mark = "[green]note[/]" if r.ok else f"[{STYLE.get(r.verdict, 'bold yellow')}]" \
               f"{r.verdict}[/]"
        console.print(f"{mark} {escape(r.store)} {escape(r.what)}: {escape(r.detail)}")
    if report.ok:
        console.print(f"[green]all {len(report.rows)} comparisons agree[/]")
    else:
        names = ", ".join(f"{r.store} {r.what}" for r in report.failures)
        console.print(f"[bold red]{len(report.failures)} of {len(report.rows)} comparisons "
                      f"failed:[/] {escape(names)}")


def as_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2)
