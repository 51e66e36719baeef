"""Build reports for one UTC date and write them under ``<data dir>/reports``.

Shared by ``ece warehouse report`` and the Dagster report assets, so a report is
the same whoever asks. The lake is opened read-only; if it cannot be opened, each
lake figure says so and the live ones are still read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from ece.settings import Settings
from warehouse.lake import connect, lake_tables
from warehouse.reports import financial, market, system_health, user_activity
from warehouse.reports.model import Inputs, Report
from warehouse.reports.render import Written, write

Log = Callable[[str], None]
Builder = Callable[[Inputs], Report]
REPORTS: dict[str, Builder] = {
    market.NAME: market.build,
    user_activity.NAME: user_activity.build,
    financial.NAME: financial.build,
    system_health.NAME: system_health.build,
}
# The gold marts each report reads (lineage for Dagster; system_health reads no mart).
READS: dict[str, tuple[str, ...]] = {
    market.NAME: ("daily_market_summary", "card_price_daily", "market_trends"),
    user_activity.NAME: ("user_activity_daily", "portfolio_value_daily"),
    financial.NAME: ("financial_report_daily",),
    system_health.NAME: (),
}


class BadDate(ValueError):
    """A ``--date`` that is not a date, or one after today (UTC)."""


def check_day(text: str, today: date) -> date:
    """The report date ``text`` names; reports cover days that have begun (today included)."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise BadDate(f"--date {text} is not a date (YYYY-MM-DD)") from None
    if day > today:
        raise BadDate(f"--date {day} is in the future (today is {today} UTC)")
    return day


def reports_root(settings: Settings) -> Path:
    return settings.data_dir / "reports"


def build_one(name: str, con: duckdb.DuckDBPyConnection | None, settings: Settings, day: date,
              log: Log, tables: set[tuple[str, str]] | None = None) -> Written:
    """Build and write one report (``con`` None: the lake could not be opened)."""
    if tables is None:
        tables = lake_tables(con) if con is not None else set()
    log(f"[{name}] building {day} ...")
    report = REPORTS[name](Inputs(con, tables, day, settings, datetime.now(UTC)))
    written = write(report, reports_root(settings))
    unavailable = [s.key for s in report.sections if s.unavailable]
    log(f"[{name}] {len(report.charts)} charts, {len(report.sections)} sections"
        + (f", no data ({report.no_data})" if report.no_data else "")
        + (f", unavailable: {', '.join(unavailable)}" if unavailable else "")
        + f" -> {written.html_path}")
    return written


def open_lake(settings: Settings, log: Log) -> duckdb.DuckDBPyConnection | None:
    try:
        return connect(settings, read_only=True)
    except Exception as exc:  # noqa: BLE001 - reported in every lake figure, not raised
        log(f"lake not readable ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "lake figures will say so")
        return None


def build_reports(settings: Settings, day: date, log: Log,
                  names: Iterable[str] = tuple(REPORTS)) -> list[Written]:
    """Every report of ``names`` for ``day``, on one read-only lake connection."""
    con = open_lake(settings, log)
    try:
        tables = lake_tables(con) if con is not None else set()
        return [build_one(name, con, settings, day, log, tables) for name in names]
    finally:
        if con is not None:
            con.close()
