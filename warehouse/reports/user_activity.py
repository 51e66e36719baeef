"""The user activity report: who bought, sold, bid, listed and traded that day, and holdings.

Rows are ``gold.user_activity_daily`` and ``gold.portfolio_value_daily`` of the
date; the totals are their column sums (said so in their source line).
"""

from __future__ import annotations

from typing import Any

from warehouse.reports import charts
from warehouse.reports.gold import mart_section
from warehouse.reports.model import Chart, Inputs, Report, Section

NAME = "user_activity"
TITLE = "User activity report"
TOP = 10
COUNTS = ("purchases", "sales", "bids", "listings", "trades")
MONEY = ("spent_cents", "earned_cents")


def _totals(activity: Section, portfolio: Section) -> Section:
    """Sums over both marts' rows of the date (one row: the date)."""
    columns: list[str] = ["date"]
    values: list[Any] = [None]
    sources = []
    if activity.has_rows:
        rows = activity.records()
        values[0] = rows[0]["date"]
        columns += ["active_users", *COUNTS, *MONEY]
        values += [len(rows), *(sum(int(r[c] or 0) for r in rows) for c in (*COUNTS, *MONEY))]
        sources.append(f"count and column sums of {activity.source}")
    if portfolio.has_rows:
        rows = portfolio.records()
        values[0] = rows[0]["date"]
        columns += ["holders", "cards_held", "portfolio_value_cents"]
        values += [len(rows), sum(int(r["card_count"] or 0) for r in rows),
                   sum(int(r["value_cents"] or 0) for r in rows)]
        sources.append(f"count and column sums of {portfolio.source}")
    if not sources:
        return Section("totals", "Totals", "sums over the two marts below",
                       empty="neither mart has a row for the date")
    return Section("totals", "Totals", "; ".join(sources), columns=columns,
                   rows=[tuple(values)])


def build(inputs: Inputs) -> Report:
    con, day, tables = inputs.con, inputs.day, inputs.tables
    activity = mart_section(con, "user_activity_daily", day, "Activity by user",
                            "spent_cents + earned_cents DESC, user_id", tables=tables)
    portfolio = mart_section(con, "portfolio_value_daily", day, "Portfolio value by user "
                             "(end of day)", "value_cents DESC, user_id", tables=tables)
    report = Report(NAME, TITLE, day, inputs.now,
                    sections=[_totals(activity, portfolio), activity, portfolio])
    if not activity.has_rows:
        report.no_data = ("no user bought, sold, bid, listed or traded: "
                          + (activity.unavailable or activity.empty or ""))
        return report
    rows = activity.records()
    report.charts.append(Chart(
        f"Actions on {day.isoformat()} (all users)",
        charts.bars("Actions", list(COUNTS),
                    {"count": [sum(int(r[c] or 0) for r in rows) for c in COUNTS]}),
        f"column sums of {activity.source}"))
    top = rows[:TOP]
    report.charts.append(Chart(
        f"Top {len(top)} users by money moved (cents)",
        charts.bars("Spent and earned", [str(r["user_id"])[:8] for r in top],
                    {"spent": [r["spent_cents"] or 0 for r in top],
                     "earned": [r["earned_cents"] or 0 for r in top]},
                    ylabel="cents", horizontal=True),
        activity.source))
    return report
