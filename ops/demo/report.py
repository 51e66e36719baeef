"""What a demo run sent and how it went: counts and latencies per request type."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from ops.demo.invariants import Invariants
from ops.demo.memory import MemorySample


@dataclass
class KindStats:
    sent: int = 0
    ok: int = 0
    refused: int = 0
    rate_limited: int = 0
    errors: int = 0
    server_errors: int = 0  # 5xx answers (``errors`` also counts transport failures)
    latencies: list[float] = field(default_factory=list)

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(int(len(ordered) * p), len(ordered) - 1)] * 1000


@dataclass
class DemoReport:
    seconds: float = 0.0
    tag: str = ""  # this run's users are demo<tag>u<i>, its cards in set "Demo <tag>"
    stats: dict[str, KindStats] = field(default_factory=lambda: defaultdict(KindStats))
    refusals: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    invariants: Invariants = field(default_factory=Invariants)
    # Per route template ("GET /cards/{id}"), the latencies a soak reports.
    routes: dict[str, KindStats] = field(default_factory=lambda: defaultdict(KindStats))
    memory: list[MemorySample] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(s.sent for s in self.stats.values())

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.stats.values())

    @property
    def server_errors(self) -> int:
        return sum(s.server_errors for s in self.stats.values())

    def count(self, kind: str) -> int:
        return self.stats[kind].ok if kind in self.stats else 0

    def sample(self, line: str) -> None:
        """Keep the first few error lines for the report."""
        if len(self.error_samples) < 10:
            self.error_samples.append(line)


def print_report(report: DemoReport, echo: Callable[[str], None]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ece demo: {report.requests} requests in {report.seconds:.1f}s")
    for column in ("type", "sent", "ok", "refused", "429", "errors", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for kind, s in sorted(report.stats.items()):
        table.add_row(
            kind,
            str(s.sent),
            str(s.ok),
            str(s.refused),
            str(s.rate_limited),
            str(s.errors),
            f"{s.percentile(0.5):.0f}",
            f"{s.percentile(0.99):.0f}",
        )
    Console(width=100).print(table)
    if report.routes:
        print_routes(report)
    if any(sample.pss_kib for sample in report.memory):
        print_memory(report.memory, echo)
    if report.refusals:
        echo(
            "refusals (expected in a busy market): "
            + ", ".join(f"{k} x{n}" for k, n in report.refusals.most_common(12))
        )
    for action, why in report.skipped.items():
        echo(f"skipped {action}: {why}")
    for line in report.error_samples:
        echo(f"error: {line}")
    inv = report.invariants
    if inv.error:
        echo(f"invariants: could not read the database: {inv.error}")
        return
    echo(f"errors: {report.errors} ({report.server_errors} server errors, 5xx)")
    echo(f"ledger sum: {inv.ledger_sum_cents} cents (must be 0)")
    echo(f"double sales: {inv.double_sales} (must be 0)")
    echo(f"negative balances: {inv.negative_balances} (must be 0)")
    echo(f"unbalanced ledger transactions: {inv.unbalanced_transactions} (must be 0)")
    echo("invariants: OK" if inv.hold else "invariants: VIOLATED")


def print_routes(report: DemoReport) -> None:
    """p50/p99 per route template: what a soak compares run to run."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="latency per route")
    for column in ("route", "requests", "5xx", "p50 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="left" if column == "route" else "right")
    for route, s in sorted(report.routes.items()):
        table.add_row(route, str(len(s.latencies)), str(s.server_errors),
                      f"{s.percentile(0.5):.0f}", f"{s.percentile(0.99):.0f}",
                      f"{max(s.latencies, default=0.0) * 1000:.0f}")
    Console(width=110).print(table)


def print_memory(samples: list[MemorySample], echo: Callable[[str], None]) -> None:
    """PSS per part at each sample, then the growth from the first sample to the last."""
    parts = sorted({name for sample in samples for name in sample.pss_kib})
    echo("memory (PSS MiB): " + " | ".join(
        f"{s.label} @{s.at_s:.0f}s total {s.total_kib / 1024:.0f}" for s in samples))
    first, last = samples[0], samples[-1]
    for name in parts:
        values = " -> ".join(f"{s.pss_kib.get(name, 0) / 1024:.0f}" for s in samples)
        echo(f"  {name}: {values}")
    if first.total_kib:
        growth = (last.total_kib - first.total_kib) / first.total_kib * 100
        echo(f"memory growth first -> last: {growth:+.1f}%")
