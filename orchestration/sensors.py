"""The sensor that lands new CDC events every minute.

It asks the broker whether any topic is ahead of the offsets stored in the lake
and only then requests a refresh, so an idle platform creates no empty runs; it
also waits while a previous refresh is still going instead of piling them up.
"""

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from orchestration.jobs import refresh_job
from orchestration.resources import LakeResource, LandingResource
from warehouse.bronze import pending_topics

IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
             DagsterRunStatus.STARTED]


@sensor(job=refresh_job, minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description="Refresh the lake when CDC topics hold events not landed yet.")
def cdc_events_sensor(context: SensorEvaluationContext, lake: LakeResource,
                      landing: LandingResource) -> RunRequest | SkipReason:
    running = context.instance.get_run_records(
        RunsFilter(job_name=refresh_job.name, statuses=IN_FLIGHT), limit=1)
    if running:
        return SkipReason("a refresh is still running")
    con = lake.cursor()
    try:
        waiting = pending_topics(con, landing.config())
    finally:
        con.close()
    if not waiting:
        return SkipReason("no new CDC events")
    total = sum(waiting.values())
    return RunRequest(tags={"ece/trigger": "cdc_events_sensor", "ece/pending": str(total)})
