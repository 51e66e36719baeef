"""The financial report: gross volume, fees, deposits and whether the ledger balanced.

The figures are the ``gold.financial_report_daily`` row of the date; the fee rate
is derived from that row and says so.
"""

from __future__ import annotations

from warehouse.reports import charts
from warehouse.reports.gold import mart_section
from warehouse.reports.model import Chart, Inputs, Report, Section

NAME = "financial"
TITLE = "Financial report"


def _derived(mart: Section) -> Section:
    row = mart.records()[0]
    gross, fees = int(row["gross_volume_cents"] or 0), int(row["fees_cents"] or 0)
    return Section(
        "derived", "Derived from that row",
        f"computed from {mart.source}: net = gross_volume_cents - fees_cents, "
        "fee_rate = fees_cents / gross_volume_cents",
        columns=["date", "net_to_sellers_cents", "fee_rate"],
        rows=[(row["date"], gross - fees, round(fees / gross, 6) if gross else None)])


def build(inputs: Inputs) -> Report:
    mart = mart_section(inputs.con, "financial_report_daily", inputs.day, "Financial summary",
                        "date", tables=inputs.tables)
    report = Report(NAME, TITLE, inputs.day, inputs.now, sections=[mart])
    if not mart.has_rows:
        report.no_data = "no sale and no ledger entry: " + (mart.unavailable or mart.empty or "")
        return report
    report.sections.append(_derived(mart))
    row = mart.records()[0]
    balanced = "balanced" if row["ledger_balanced"] else "NOT balanced"
    report.charts.append(Chart(
        f"Money on {inputs.day.isoformat()} (cents); ledger {balanced}",
        charts.bars(f"Ledger {balanced}", ["gross volume", "fees", "deposits"],
                    {"cents": [row["gross_volume_cents"] or 0, row["fees_cents"] or 0,
                               row["deposits_cents"] or 0]}, ylabel="cents"),
        mart.source))
    if not row["ledger_balanced"]:
        report.notes.append("The day's ledger entries do not sum to zero: entries are missing "
                            "or corrupt (see the quality check results).")
    return report
