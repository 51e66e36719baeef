"""Report assets: one per report, partitioned by the gold marts' UTC days, built nightly.

A partition D writes ``<data dir>/reports/<report>/D.html`` and ``D.csv``
(:mod:`warehouse.reports`); its materialization carries the chart inline
(``MetadataValue.md`` with the PNG as a base64 data URI, which the Dagster UI
renders) and the paths of both files. The schedule runs at 00:45 UTC, half an
hour after ``nightly_refresh`` (00:15) built yesterday's gold partitions.

The ``refresh`` job selects every asset, so the sensor's runs (every minute, for
today) would rebuild the reports too: the assets skip themselves there and only
materialize in the reports job, a backfill or an explicit materialization.
"""

import warnings
from collections.abc import Iterator
from datetime import timedelta

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    BackfillPolicy,
    BetaWarning,
    JobDefinition,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    asset,
    define_asset_job,
    schedule,
)

from orchestration.assets.gold_partitions import DAILY, window_days
from orchestration.assets.gold_partitions import GROUP as GOLD_GROUP
from orchestration.jobs import REPORTS_GROUP, refresh_job
from orchestration.resources import LakeResource
from warehouse.reports.builder import READS, REPORTS, build_one
from warehouse.reports.render import Written, png_data_uri

GROUP = REPORTS_GROUP
REPORTS_CRON = "45 0 * * *"  # after nightly_refresh's 15 0 * * * (orchestration/schedules.py)


def report_key(name: str) -> AssetKey:
    return AssetKey([GROUP, name])


def chart_markdown(written: Written) -> str:
    """The report's charts (or why it has none) as Markdown with inline PNGs."""
    report = written.report
    lines = [f"**{report.title} {report.day.isoformat()}**", ""]
    if report.no_data:
        lines.append(f"No data for {report.day.isoformat()}: {report.no_data}")
    for chart in report.charts:
        lines += [f"![{chart.title}]({png_data_uri(chart.png)})", "",
                  f"*{chart.title}. Source: {chart.source}*", ""]
    unavailable = [f"- {s.title}: {s.unavailable}" for s in report.sections if s.unavailable]
    if unavailable:
        lines += ["", "Not available:", *unavailable]
    return "\n".join(lines)


def report_metadata(written: Written) -> dict[str, MetadataValue]:  # type: ignore[type-arg]
    """What the UI shows for one built report (also recorded by ``ece warehouse report``)."""
    report = written.report
    return {
        "chart": MetadataValue.md(chart_markdown(written)),
        "html": MetadataValue.path(str(written.html_path)),
        "csv": MetadataValue.path(str(written.csv_path)),
        "date": MetadataValue.text(report.day.isoformat()),
        "charts": MetadataValue.int(len(report.charts)),
        "has_data": MetadataValue.bool(report.no_data is None),
        "unavailable": MetadataValue.text(
            ", ".join(s.key for s in report.sections if s.unavailable) or "none"),
    }


def range_metadata(written: list[Written]) -> dict[str, MetadataValue]:  # type: ignore[type-arg]
    """A backfill's one materialization over several dates: a line per date, no images
    (every partition of the range carries the same metadata; each page has its charts)."""
    lines = ["| date | data | charts | page |", "| --- | --- | --- | --- |"]
    lines += [f"| {w.report.day} | {'none' if w.report.no_data else 'yes'} | "
              f"{len(w.report.charts)} | {w.html_path} |" for w in written]
    return {"chart": MetadataValue.md("\n".join(lines)),
            "days": MetadataValue.int(len(written)),
            "first_day": MetadataValue.text(written[0].report.day.isoformat()),
            "last_day": MetadataValue.text(written[-1].report.day.isoformat())}


def _define(name: str) -> AssetsDefinition:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)  # backfill_policy, as the gold assets use it
        return _asset(name)


def _asset(name: str) -> AssetsDefinition:
    # single_run like the gold marts: one policy for all keeps a backfill over both in one
    # run (mixed policies make Dagster split them per partition). The refresh job leaves
    # the reports out (orchestration.jobs); the skip below guards any job of that name.
    @asset(key=report_key(name), deps=[AssetKey([GOLD_GROUP, m]) for m in READS[name]],
           group_name=GROUP, partitions_def=DAILY, backfill_policy=BackfillPolicy.single_run(),
           output_required=False, kinds={"python", "html"},
           description=f"The {name} report of the partition's date: "
                       f"data/reports/{name}/<date>.html and .csv (docs/reports.md).")
    def _build(context: AssetExecutionContext, lake: LakeResource) -> Iterator[MaterializeResult]:
        if context.run.job_name == refresh_job.name:
            context.log.info(f"reports/{name}: skipped in {refresh_job.name} "
                             f"(built by the {REPORT_JOB_NAME} job)")
            return
        con = lake.cursor()
        try:
            written = [build_one(name, con, lake.settings(), day, context.log.info)
                       for day in window_days(context)]
        finally:
            con.close()
        yield MaterializeResult(metadata=report_metadata(written[0]) if len(written) == 1
                                else range_metadata(written))

    return _build


REPORT_JOB_NAME = "reports_daily"
REPORT_ASSETS: list[AssetsDefinition] = [_define(name) for name in REPORTS]
reports_job = define_asset_job(
    REPORT_JOB_NAME, selection=AssetSelection.groups(GROUP),
    description="Write every report of a date (data/reports/<report>/<date>.html and .csv).")


@schedule(job=reports_job, cron_schedule=REPORTS_CRON, execution_timezone="UTC",
          description="Nightly: yesterday's reports (UTC), after nightly_refresh built its gold.")
def nightly_reports(context: ScheduleEvaluationContext) -> RunRequest:
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return RunRequest(run_key=f"reports-{day}", partition_key=day,
                      tags={"ece/report_date": day})


REPORT_SCHEDULES: list[ScheduleDefinition] = [nightly_reports]
# define_asset_job's job is resolved by Definitions; Dagster does not export that type.
REPORT_JOBS: list[JobDefinition] = [reports_job]  # type: ignore[list-item]
