"""Kill -9 Dagster's daemon mid-backfill, restart it: the backfill completes, rows as a clean build.

An operator launches a backfill of every gold mart over 31 dates from the UI
(GraphQL ``launchPartitionBackfill``, what the "Launch backfill" button sends);
the daemon turns it into one run (single-run backfill policy). While that run is
half-way, the daemon's process group (the whole Dagster part: webserver,
daemon, code server and the run worker) gets SIGKILL, and the part is started
again as the supervisor restarts a crashed part. What must hold: the run the
kill left STARTED is closed as failed, it is retried from the failure inside the
same backfill, the backfill ends COMPLETED_SUCCESS, every date's gold rows equal
a clean build of the same dates, and no date appears twice.
"""

from __future__ import annotations

import os
import re
import signal
import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
from cdcfeed import Feed
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from test_partitions import DAYS, KEYS, _duplicates, _market

from ece.settings import Settings
from ops.stack.base import live_group_members
from ops.stack.dagster import dagster_home
from tests.support.dagstertest import (
    backfill_status,
    dagster_part,
    launch_backfill,
    quiesce,
    refresh_recorded,
)
from warehouse.lake import connect
from warehouse.partitions import build_days, days
from warehouse.sql import models

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

FIRST, LAST = date(2026, 2, 1), DAYS[-1]
DATES = days(FIRST, LAST)
# steps.gold logs one line per date and mart: "ece.gold.card_price_daily 2026-02-01: 0 rows (1/31)"
PROGRESS = re.compile(r"^ece\.gold\.\w+ \d{4}-\d\d-\d\d: \d+ rows \(\d+/\d+\)$")
KILL_AFTER_LINES = 40  # of 6 marts x 31 dates = 186
BACKFILL_TAG = "dagster/backfill"


def _window(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    """Every mart's rows of the backfilled dates (a sensor run may have built today's)."""
    return {t: con.execute(f"SELECT * FROM ece.gold.{t} WHERE date BETWEEN ? AND ? ORDER BY ALL",
                           [FIRST, LAST]).fetchall() for t in KEYS}


def _progress_lines(instance: DagsterInstance, run_id: str) -> int:
    return sum(1 for e in instance.all_logs(run_id) if PROGRESS.match(e.user_message or ""))


def _backfill_run(instance: DagsterInstance, backfill_id: str, timeout: float) -> str:
    """The backfill's run, once the daemon submitted it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = instance.get_run_records(RunsFilter(tags={BACKFILL_TAG: backfill_id}))
        if records:
            return str(records[-1].dagster_run.run_id)  # the first one (newest first)
        time.sleep(0.5)
    raise AssertionError(f"the daemon submitted no run for backfill {backfill_id} in {timeout}s")


def _daemon_pid(pgid: int) -> int:
    for pid in live_group_members(pgid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"dagster._daemon" in argv:
            return pid
    raise AssertionError(f"no dagster-daemon process in group {pgid}")


def _wait_backfill(url: str, backfill_id: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = backfill_status(url, backfill_id)
        if status not in ("REQUESTED", "CANCELING", "FAILING"):
            return status
        time.sleep(2)
    raise AssertionError(f"backfill {backfill_id} still {status} after {timeout}s")


def test_backfill_resumes_after_daemon_kill_9(lake_settings: Settings, feed: Feed) -> None:
    _market(feed)
    refresh_recorded(lake_settings)  # lands and builds silver (today's gold too)
    con = connect(lake_settings)
    catalog = lake_settings.lake_catalog
    for m in models("gold"):  # the clean build of the same dates (alphabetical: prices first)
        build_days(con, m, FIRST, LAST, catalog)
    clean = _window(con)
    assert [r[0] for r in clean["daily_market_summary"]] == list(DAYS)
    assert len(clean["card_price_daily"]) == 9 and clean["portfolio_value_daily"]
    for table in KEYS:  # the backfill must write every row back itself
        con.execute(f"DELETE FROM ece.gold.{table}")
    assert all(rows == [] for rows in _window(con).values())

    with dagster_part(lake_settings) as part:
        assert part.process is not None and part.process.proc is not None
        stopped = quiesce(part.url)  # no sensor's refresh run beside the backfill
        assert "cdc_events_sensor" in stopped, stopped
        instance = DagsterInstance.from_config(str(dagster_home(part.settings)))
        backfill_id = launch_backfill(part.url, [["gold", t] for t in KEYS],
                                      [d.isoformat() for d in DATES], "kill -9 drill")
        run_id = _backfill_run(instance, backfill_id, 300)

        deadline = time.monotonic() + 600
        lines = 0
        while lines < KILL_AFTER_LINES:
            run = instance.get_run_by_id(run_id)
            assert run is not None and not run.is_finished, \
                f"run {run_id} finished ({run and run.status}) before the kill"
            assert time.monotonic() < deadline, f"only {lines} progress lines in 600s"
            time.sleep(0.2)
            lines = _progress_lines(instance, run_id)
        pgid = os.getpgid(_daemon_pid(part.process.proc.pid))
        os.killpg(pgid, signal.SIGKILL)
        killed_at = time.monotonic()
        while live_group_members(pgid):
            assert time.monotonic() - killed_at < 30, live_group_members(pgid)
            time.sleep(0.1)
        left = instance.get_run_by_id(run_id)
        assert left is not None and left.status == DagsterRunStatus.STARTED  # nobody closed it
        assert _progress_lines(instance, run_id) < 6 * len(DATES)  # killed half-way

        part.stop()  # as the supervisor does with a crashed part: reap, then start again
        part.start()
        status = _wait_backfill(part.url, backfill_id, 900)
        assert status == "COMPLETED_SUCCESS", status

        closed = instance.get_run_by_id(run_id)
        assert closed is not None and closed.status == DagsterRunStatus.FAILURE
        assert closed.tags.get("dagster/failure_reason") == "UNEXPECTED_TERMINATION"
        failure = [e.dagster_event.message for e in instance.all_logs(run_id)
                   if e.dagster_event is not None and e.dagster_event.is_run_failure]
        assert failure and "run worker (pid" in (failure[-1] or "") \
            and "is gone" in (failure[-1] or ""), failure
        retries = [r.dagster_run for r in instance.get_run_records(
            RunsFilter(tags={BACKFILL_TAG: backfill_id})) if r.dagster_run.run_id != run_id]
        assert [r.status for r in retries] == [DagsterRunStatus.SUCCESS], retries
        assert retries[0].parent_run_id == run_id
        instance.dispose()

    rebuilt = _window(con)
    assert rebuilt == clean
    assert set(_duplicates(con).values()) == {0}
