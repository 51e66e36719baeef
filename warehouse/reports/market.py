"""The market report: the day's summary, its cards' OHLC and the trends by rarity and set.

Every figure is a row of a gold mart's partition of that date
(``daily_market_summary``, ``card_price_daily``, ``market_trends``); the charts
draw those same rows.
"""

from __future__ import annotations

from warehouse.reports import charts
from warehouse.reports.gold import mart_section
from warehouse.reports.model import Chart, Inputs, Report

NAME = "market"
TITLE = "Market report"
TOP = 10


def build(inputs: Inputs) -> Report:
    con, day, tables = inputs.con, inputs.day, inputs.tables
    summary = mart_section(con, "daily_market_summary", day, "Daily market summary",
                           "date", tables=tables)
    cards = mart_section(con, "card_price_daily", day, "Card prices (OHLC) by volume",
                         "volume_cents DESC, card_id", key_columns=2, tables=tables)
    trends = mart_section(con, "market_trends", day, "Trends by rarity and set",
                          "volume_cents DESC, rarity, set_name", key_columns=3, tables=tables)
    report = Report(NAME, TITLE, day, inputs.now, sections=[summary, cards, trends])
    if not any(s.has_rows for s in report.sections):
        report.no_data = "no sale, listing, auction or trade in the gold market marts"
        return report
    if cards.has_rows:
        top = cards.records()[:TOP]
        report.charts.append(Chart(
            f"Top {len(top)} cards by volume (cents)",
            charts.bars("Volume by card", [str(r["card_id"])[:8] for r in top],
                        {"volume_cents": [r["volume_cents"] for r in top]},
                        ylabel="cents", horizontal=True),
            cards.source))
    if trends.has_rows:
        rows = trends.records()[:TOP]
        report.charts.append(Chart(
            "Average sale price by rarity and set: the day, trailing 7 and 30 days (cents)",
            charts.bars("Average price", [f"{r['rarity']}/{r['set_name']}" for r in rows],
                        {"day": [r["avg_price_cents"] or 0 for r in rows],
                         "7 days": [r["avg_price_7d_cents"] or 0 for r in rows],
                         "30 days": [r["avg_price_30d_cents"] or 0 for r in rows]},
                        ylabel="cents"),
            trends.source))
    return report
