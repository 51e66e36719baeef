"""Gold marts as daily-partitioned assets (one partition = one UTC date's rows).

Every ``warehouse/gold/<mart>.sql`` is a query over a range of days; a run of
partition D replaces D's rows in one lake transaction
(:func:`warehouse.partitions.build_days`). ``BackfillPolicy.single_run`` makes a
backfill of a range (from the UI or ``ece warehouse backfill``) one run that
walks its days in order, one transaction and one progress line per day and
mart, so a killed backfill keeps the days it committed and a rerun rewrites
them to the same rows.
"""

import warnings
from datetime import UTC, date, datetime, timedelta

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    BetaWarning,
    DailyPartitionsDefinition,
    MaterializeResult,
    asset,
)

from orchestration.resources import LakeResource
from warehouse import steps
from warehouse.partitions import days, is_partitioned
from warehouse.sql import SqlModel, models

# The first partition: before the platform's first trade (partitions are cheap,
# a day without activity is an empty partition). end_offset=1 adds today's
# partition, the one the sensor keeps current.
GOLD_START = date(2026, 1, 1)
DAILY = DailyPartitionsDefinition(start_date=GOLD_START.isoformat(), timezone="UTC",
                                  end_offset=1)
GROUP = "gold"


def today() -> date:
    return datetime.now(UTC).date()


def partition_key(day: date) -> str:
    return day.isoformat()


def window_days(context: AssetExecutionContext) -> list[date]:
    """The UTC dates this run builds (one partition, or a backfill's range)."""
    window = context.partition_time_window
    return days(window.start.date(), (window.end - timedelta(days=1)).date())


def _asset_for(sql_model: SqlModel) -> AssetsDefinition:
    with warnings.catch_warnings():
        # backfill_policy is "beta" (since 1.5), used as documented
        warnings.simplefilter("ignore", BetaWarning)
        return _define(sql_model)


def _define(sql_model: SqlModel) -> AssetsDefinition:
    deps = [AssetKey([layer, table]) for layer, table in sql_model.upstream]

    @asset(key=AssetKey([sql_model.layer, sql_model.name]), deps=deps, group_name=GROUP,
           partitions_def=DAILY, backfill_policy=BackfillPolicy.single_run(),
           kinds={"duckdb", "sql"}, description=sql_model.description or None,
           metadata={"sql_file": str(sql_model.path.name), "table": sql_model.table,
                     "partitioned_by": "date (UTC day)"})
    def _build(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
        con = lake.cursor()
        try:
            metadata = steps.gold(con, sql_model, window_days(context), lake.catalog,
                                  context.log.info)
        finally:
            con.close()
        return MaterializeResult(metadata=metadata)

    return _build


GOLD_ASSETS: list[AssetsDefinition] = [
    _asset_for(m) for m in models(GROUP) if is_partitioned(m)
]
