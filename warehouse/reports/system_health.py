"""The system health report: API latency and errors, CDC lag, stream checkpoints,
dead letters and quality check results.

Two kinds of figures, each saying which: the lake's records of the date (check
results, commit-to-bronze lag of the events landed for it) and live readings of
the running platform taken when the report is built (:mod:`warehouse.reports.probes`:
the API's Prometheus metrics, the replication slot, Flink's checkpoints, the DLQ
topic). A source that does not answer is reported as such for its figures only.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import duckdb

from quality.results import TABLE as CHECK_RESULTS
from warehouse.lake import ALIAS
from warehouse.reports import charts, probes
from warehouse.reports.model import Chart, Inputs, Report, Section

NAME = "system_health"
TITLE = "System health report"


def _lake_error(exc: duckdb.Error) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


def checks(inputs: Inputs) -> Section:
    """Each check's latest verdict of the day, failures first."""
    base = Section("quality.check_results", "Quality checks",
                   f"{CHECK_RESULTS} (latest result per asset and check with checked_at on "
                   f"{inputs.day.isoformat()} UTC)", key_columns=2, shown=40)
    if inputs.con is None:
        return replace(base, unavailable="the lake could not be opened")
    if ("quality", "check_results") not in inputs.tables:
        return replace(base, unavailable=f"{CHECK_RESULTS} does not exist yet (no check has run)")
    lo = datetime.combine(inputs.day, time(), UTC)
    try:
        rows = inputs.con.execute(f"""
            SELECT asset, "check", arg_max(success, checked_at) AS latest_success,
                   count(*) AS runs, count(*) FILTER (WHERE NOT success) AS failed_runs,
                   arg_max(observed_value, checked_at) AS latest_observed_value
            FROM {CHECK_RESULTS}
            WHERE checked_at >= ? AND checked_at < ?
            GROUP BY asset, "check"
            ORDER BY latest_success, asset, "check"
        """, [lo, lo + timedelta(days=1)]).fetchall()
    except duckdb.Error as exc:
        return replace(base, unavailable=_lake_error(exc))
    return replace(base, columns=["asset", "check", "latest_success", "runs", "failed_runs",
                                  "latest_observed_value"], rows=[tuple(r) for r in rows],
                   empty=f"no check ran on {inputs.day.isoformat()}")


def bronze_lag(inputs: Inputs) -> Section:
    """Per bronze table: events of the date and their commit-to-lake lag."""
    base = Section("cdc.bronze_lag", "CDC lag: commit to bronze",
                   f"{ALIAS}.bronze.<table> rows with _day = {inputs.day.isoformat()}: lag = "
                   "_ingested_at - ts_ms (source commit time), so it includes the time "
                   "an event waited for the next landing run")
    tables = sorted(t for s, t in inputs.tables if s == "bronze" and not t.startswith("_"))
    if inputs.con is None:
        return replace(base, unavailable="the lake could not be opened")
    if not tables:
        return replace(base, empty="nothing has been landed yet")
    lag = "epoch(_ingested_at) - ts_ms / 1000.0"
    union = " UNION ALL ".join(
        f"SELECT '{t}' AS tbl, {lag} AS lag FROM {ALIAS}.bronze.\"{t}\" "
        "WHERE _day = $day AND ts_ms IS NOT NULL" for t in tables)
    try:
        rows = inputs.con.execute(f"""
            SELECT tbl, count(*) AS events, round(quantile_cont(lag, 0.5), 3),
                   round(quantile_cont(lag, 0.95), 3), round(max(lag), 3)
            FROM ({union}) GROUP BY tbl ORDER BY events DESC, tbl
        """, {"day": inputs.day}).fetchall()
    except duckdb.Error as exc:
        return replace(base, unavailable=_lake_error(exc))
    return replace(base, columns=["table", "events", "lag_p50_s", "lag_p95_s", "lag_max_s"],
                   rows=[tuple(r) for r in rows],
                   empty=f"no change event of {inputs.day.isoformat()} in bronze")


def _charts(report: Report, api: probes.ApiMetrics, quality: Section, lag: Section) -> None:
    if api.totals.has_rows and api.buckets and sum(n for _, n in api.buckets):
        report.charts.append(Chart(
            "API latency: requests per latency bucket (since the API started)",
            charts.bars("Latency", [b for b, _ in api.buckets],
                        {"requests": [n for _, n in api.buckets]}, ylabel="requests"),
            api.totals.source))
    if quality.has_rows:
        per_asset: dict[str, list[int]] = {}
        for r in quality.records():
            per_asset.setdefault(str(r["asset"]), [0, 0])[0 if r["latest_success"] else 1] += 1
        assets = sorted(per_asset)
        report.charts.append(Chart(
            "Quality checks by asset: passing and failing on their latest run of the day",
            charts.bars("Checks", assets, {"passing": [per_asset[a][0] for a in assets],
                                           "failing": [per_asset[a][1] for a in assets]}),
            quality.source))
    if lag.has_rows:
        rows = lag.records()[:12]
        report.charts.append(Chart(
            "Commit-to-bronze lag per table (seconds)",
            charts.bars("CDC lag", [str(r["table"]) for r in rows],
                        {"p50": [r["lag_p50_s"] or 0 for r in rows],
                         "p95": [r["lag_p95_s"] or 0 for r in rows]}, ylabel="seconds"),
            lag.source))


def build(inputs: Inputs) -> Report:
    settings, day, now = inputs.settings, inputs.day, inputs.now
    api = probes.api_metrics(settings, now)
    quality, lag = checks(inputs), bronze_lag(inputs)
    letters = probes.dlq_letters(settings, day, now)
    report = Report(NAME, TITLE, day, now, sections=[
        api.totals, api.routes, probes.cdc_slot(settings, now), lag,
        probes.flink_checkpoints(settings, now), letters, quality])
    report.notes.append(
        f"Live readings (API metrics, replication slot, Flink checkpoints, DLQ topic) were "
        f"taken at {now.isoformat(timespec='seconds')}; lake figures are those of "
        f"{day.isoformat()}. Each section names its source.")
    if not (quality.has_rows or lag.has_rows or letters.has_rows):
        report.no_data = ("no check ran, no change event was landed and no letter was "
                          "dead-lettered on this date; the live readings below still apply")
    _charts(report, api, quality, lag)
    return report
