"""The nightly schedule: rebuild everything after the UTC day closed.

Silver tables are rebuilt whole (current state from every event), so "yesterday's
partition" is complete once the run after midnight UTC landed its last events;
the schedule tags the run with the date it closes for the UI and the reports.
"""

from datetime import timedelta

from dagster import RunRequest, ScheduleEvaluationContext, schedule

from orchestration.jobs import refresh_job


@schedule(job=refresh_job, cron_schedule="15 0 * * *", execution_timezone="UTC",
          description="Nightly rebuild closing yesterday (UTC).")
def nightly_refresh(context: ScheduleEvaluationContext) -> RunRequest:
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return RunRequest(run_key=f"nightly-{day}", tags={"ece/closing_date": day})
