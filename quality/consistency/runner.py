"""Run the consistency comparisons and collect one report (``ece check``, the Dagster asset).

The comparisons that need the API's definitions (market figures, the chain
reconciliation) are passed in by the caller, who sits on a floor that may import
the API; the rest is here. Each comparison is timed, and a store that does not
answer becomes a named ``unreachable`` row instead of stopping the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from ece.settings import Settings
from quality.consistency import cards, cdc, lake
from quality.consistency.capture import capture
from quality.consistency.model import UNREACHABLE, Comparison, Report, Row, Unreachable

# What can be selected (``ece check --only``): each name is one comparison below.
GROUPS = ("lake", "cards", "market", "chain")
SETTLE_S = 5.0


def lake_and_cdc(settings: Settings, settle_s: float = SETTLE_S) -> list[Row]:
    """PostgreSQL against silver, and CDC completeness: one capture serves both."""
    cap = capture(settings)
    try:
        states = cdc.completeness(cap, settle_s)
        return [*lake.compare(cap), *cdc.rows(states)]
    finally:
        cap.close()


def comparisons(settings: Settings, *, market: Callable[[], list[Row]] | None,
                chain: Callable[[], list[Row]] | None, settle_s: float = SETTLE_S,
                only: Iterable[str] = GROUPS) -> list[Comparison]:
    """The comparisons of ``only`` (``market``/``chain`` as the caller runs them)."""
    wanted = set(only)
    out = []
    if "lake" in wanted:
        out.append(Comparison("lake", "lake", lambda: lake_and_cdc(settings, settle_s)))
    if "cards" in wanted:
        out.append(Comparison("card documents", "redis",
                              lambda: cards.compare(settings, settle_s)))
    if "market" in wanted and market is not None:
        out.append(Comparison("market data", "redis", market))
    if "chain" in wanted and chain is not None:
        out.append(Comparison("minted NFT owners", "chain", chain))
    return out


def _failed(c: Comparison, exc: BaseException) -> Row:
    if isinstance(exc, Unreachable):
        return Row(c.store, c.name, f"an answer from {exc.store}", f"{exc.store} unreachable",
                   UNREACHABLE, exc.reason)
    return Row(c.store, c.name, "a comparison", "could not run", UNREACHABLE,
               f"{type(exc).__name__}: {exc}")


def run(selected: list[Comparison], progress: Callable[[str], None] | None = None) -> Report:
    report = Report()
    started = time.perf_counter()
    for c in selected:
        if progress is not None:
            progress(f"comparing {c.name} ...")
        t0 = time.perf_counter()
        try:
            report.rows.extend(c.run())
        except Exception as exc:  # noqa: BLE001 - named in the report, never a crash
            if "query interrupted" in str(exc).lower():  # DuckDB's word for Ctrl-C
                raise KeyboardInterrupt from exc
            report.rows.append(_failed(c, exc))
        report.timings[c.name] = time.perf_counter() - t0
    report.seconds = time.perf_counter() - started
    return report
