"""What a backfill of the gold partitions may cover, how its run is tagged, and how
runs whose worker died are closed so that the backfill goes on.

Shared by ``ece warehouse backfill`` and the tests. A range is refused when it is
reversed, reaches into the future (today's partition is the last one), starts
before the first partition, or spans more than two years (730 days): a typo like
``--from 2020-01-01`` should not start a week of rebuilding.

A backfill launched from the UI runs through the daemon: the run worker is a child
of the code server, in the Dagster part's process group. When that group is
SIGKILLed (a crash, ``ece chaos``), nobody reports the run's end: it stays STARTED
forever, and so does its backfill (Dagster's run monitoring cannot check a worker
of the default run launcher). :func:`close_orphaned_runs` runs before ``dagster
dev`` starts again (:mod:`ops.stack.dagster`): a run whose recorded worker process
is gone is marked failed (reason ``UNEXPECTED_TERMINATION``), and the instance's
run retries (``dagster.yaml``) re-execute it from the failure, inside its backfill,
which then completes. Rebuilding a partition replaces its rows, so the steps that
run twice give the same rows.
"""

import os
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from orchestration.assets.gold_partitions import GOLD_START

MAX_DAYS = 730
# Dagster's tags for a run over a partition range (one run, single-run backfill policy)
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


class BadRange(ValueError):
    """A backfill range the CLI refuses (exit 2 with this message)."""


def check_range(start: date, end: date, today: date) -> int:
    """The number of days in ``start`` .. ``end``, or :class:`BadRange` saying why not."""
    if end < start:
        raise BadRange(f"reversed range: --to {end} is before --from {start}")
    if end > today:
        raise BadRange(f"range in the future: --to {end} is after today ({today}, UTC); "
                       "the last partition is today's")
    count = (end - start).days + 1
    if count > MAX_DAYS:
        raise BadRange(f"range over two years: {count} days from {start} to {end} "
                       f"(at most {MAX_DAYS}); split it into several backfills")
    if start < GOLD_START:
        raise BadRange(f"--from {start} is before the first partition ({GOLD_START})")
    return count


def range_tags(start: date, end: date) -> dict[str, str]:
    return {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()}


# What Dagster's run worker reports first: "Started process for run (pid: N)."
WORKER_EVENT_PREFIX = "Started process for run"
ORPHANED = "its run worker (pid {pid}) is gone: the Dagster part was killed or restarted"


def _started_at(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), or None when there is no such process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration, IndexError, ValueError):
        return None
    if fields[0] == "Z":  # a zombie has finished its work
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _worker_alive(pid: int, reported_at: float) -> bool:
    """The worker still runs: its pid exists and that process is not a newer one (pid reuse)."""
    started = _started_at(pid)
    return started is not None and started <= reported_at + 1.0


def _worker_pid(instance: Any, run_id: str) -> tuple[int, float] | None:
    """(pid, when reported) of the run's worker process, None for a run no worker reported."""
    from dagster import DagsterEventType

    for entry in reversed(instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT)):
        event = entry.dagster_event
        if event is None or not (event.message or "").startswith(WORKER_EVENT_PREFIX):
            continue
        pid = event.engine_event_data.metadata.get("pid")
        if pid is not None:
            return int(getattr(pid, "value", pid)), float(entry.timestamp)
    return None


def close_orphaned_runs(instance: Any, say: Callable[[str], None]) -> list[str]:
    """Mark failed (or canceled) every in-flight run whose worker process is gone.

    Only runs with a recorded worker pid are judged: a run executing in another
    process (``ece warehouse refresh/backfill --record``) reports none and is left to
    its process. A STARTING run that never got a worker is failed by run monitoring's
    start timeout (``dagster.yaml``). Returns the ids of the runs closed.
    """
    from dagster import DagsterRunStatus, RunsFilter
    from dagster._core.events import JobFailureData, RunFailureReason

    closed = []
    records = instance.get_run_records(RunsFilter(
        statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]))
    for record in records:
        run = record.dagster_run
        worker = _worker_pid(instance, run.run_id)
        if worker is None or _worker_alive(*worker):
            continue
        why = ORPHANED.format(pid=worker[0])
        if run.status == DagsterRunStatus.CANCELING:
            instance.report_run_canceled(run, f"Canceled: {why}.")
        else:
            instance.report_run_failed(run, f"Failed: {why}.", JobFailureData(
                error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION))
        say(f"run {run.run_id} ({run.job_name}) closed at {time.strftime('%H:%M:%S')}: {why}")
        closed.append(run.run_id)
    return closed
