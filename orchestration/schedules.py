"""The nightly schedule: close yesterday's gold partitions after the UTC day ended.

At 00:15 UTC it runs the whole refresh for yesterday's partition key: the last
events of the day are landed, silver is brought up to date, and every gold mart
replaces yesterday's rows (one lake transaction each). The run key is the date,
so a daemon that was down catches up once per missed night, never twice.
"""

from datetime import timedelta

from dagster import RunRequest, ScheduleEvaluationContext, schedule

from orchestration.jobs import refresh_job

NIGHTLY_CRON = "15 0 * * *"


@schedule(job=refresh_job, cron_schedule=NIGHTLY_CRON, execution_timezone="UTC",
          description="Nightly: build yesterday's gold partitions (UTC) after landing.")
def nightly_refresh(context: ScheduleEvaluationContext) -> RunRequest:
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return RunRequest(run_key=f"nightly-{day}", partition_key=day,
                      tags={"ece/closing_date": day})
