"""The sensor that keeps the lake, and today's gold partitions, current.

Every minute it asks the broker whether any topic is ahead of the offsets stored
in the lake and then requests a refresh of today's partition (land, silver,
today's gold). It also requests one when today's partitions were not built for
``HEARTBEAT`` (a new UTC day, or an idle platform: portfolio values still move
with the calendar), so the freshness checks (:mod:`orchestration.freshness`)
fail only when the pipeline is not keeping up. It waits while a previous refresh
is still going instead of piling runs up.
"""

import time
from datetime import timedelta

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from orchestration.assets.gold_partitions import partition_key, today
from orchestration.jobs import refresh_job
from orchestration.resources import LakeResource, LandingResource
from warehouse.bronze import pending_topics

IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
             DagsterRunStatus.STARTED]
HEARTBEAT = timedelta(minutes=30)
# The mart every refresh builds last-but-one; its partition stands for "today built".
WITNESS = AssetKey(["gold", "daily_market_summary"])


def _today_built_within(context: SensorEvaluationContext, key: str, within: timedelta) -> bool:
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=WITNESS, asset_partitions=[key]), limit=1).records
    if not records:
        return False
    return time.time() - records[0].timestamp < within.total_seconds()


@sensor(job=refresh_job, minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description="Refresh today's partitions when CDC topics hold events not landed yet "
                    "(or today's were not built for 30 minutes).")
def cdc_events_sensor(context: SensorEvaluationContext, lake: LakeResource,
                      landing: LandingResource) -> RunRequest | SkipReason:
    running = context.instance.get_run_records(
        RunsFilter(job_name=refresh_job.name, statuses=IN_FLIGHT), limit=1)
    if running:
        return SkipReason("a refresh is still running")
    day = partition_key(today())
    con = lake.cursor()
    try:
        waiting = pending_topics(con, landing.config())
    finally:
        con.close()
    if waiting:
        total = sum(waiting.values())
        return RunRequest(partition_key=day, tags={"ece/trigger": "cdc_events_sensor",
                                                   "ece/pending": str(total)})
    if not _today_built_within(context, day, HEARTBEAT):
        return RunRequest(partition_key=day, tags={"ece/trigger": "cdc_events_sensor",
                                                   "ece/pending": "0", "ece/heartbeat": day})
    return SkipReason("no new CDC events; today's partitions are current")
