"""Flink as a stack part: ``python -m streaming.jobs`` (one job, local MiniCluster).

Ready means the job is RUNNING with every task running, as reported by the
MiniCluster's own REST API (GET /jobs/overview), not merely that the process
is up: the JVM takes ~10 s to start, restore state and deploy tasks.

Stopping must leave nothing behind: PyFlink starts its JVM in our process group,
so the group gets SIGTERM (the JVM's shutdown hooks close the MiniCluster and
keep the last checkpoint), we wait for the whole group to exit, then SIGKILL
stragglers and delete the MiniCluster's temp folder under ``data_dir``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from typing import Any

import httpx

from ece.settings import REPO_ROOT
from ops.stack.base import ManagedProcess, Part, wait_until

JOB_NAME = "ece-streams"
READY_TIMEOUT_S = 180.0  # ~12 s idle; 70-90 s seen on 2 cores under a full test load
STOP_GRACE_S = 20.0


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Flink(Part):
    name = "flink"
    depends_on = ("broker", "redis")
    # The job reads the broker's epoch once at start (group ids, checkpoints): a restarted,
    # empty broker is a new epoch, so the job starts again with it (and reads it from 0).
    restart_with = ("broker",)

    @property
    def url(self) -> str:
        explicit = self.settings.flink_rest_url if self.external else None
        return (explicit or f"http://127.0.0.1:{self.settings.flink_rest_port}").rstrip("/")

    def start(self) -> None:
        if self.external:
            return
        argv = [sys.executable, "-m", "streaming.jobs"]
        self.process = ManagedProcess(self.name, argv, self.log_path, cwd=REPO_ROOT,
                                      env=self.child_environment(),
                                      stop_signal=signal.SIGTERM, stop_timeout=STOP_GRACE_S)
        proc = self.process.start()
        wait_until(lambda: self.health()[0], READY_TIMEOUT_S, f"job {JOB_NAME} RUNNING",
                   self.name, proc, self.log_path,
                   fix="read the log; the JVM's own log is data/logs/flink-*-python-*.log")

    def job(self) -> dict[str, Any] | None:
        """Our job's entry in /jobs/overview (the newest one with our name), if any."""
        response = httpx.get(f"{self.url}/jobs/overview", timeout=2.0)
        response.raise_for_status()
        jobs = [j for j in response.json().get("jobs", []) if j.get("name") == JOB_NAME]
        return max(jobs, key=lambda j: j.get("start-time", 0)) if jobs else None

    def health(self) -> tuple[bool, str]:
        try:
            job = self.job()
        except (httpx.HTTPError, ValueError) as exc:
            return False, f"{self.url}: {exc}"
        if job is None:
            return False, f"{self.url}: no job {JOB_NAME}"
        tasks = job.get("tasks", {})
        running, total = tasks.get("running", 0), tasks.get("total", 0)
        detail = f"{self.url} job {job['jid']} {job['state']} ({running}/{total} tasks running)"
        return job["state"] == "RUNNING" and total > 0 and running == total, detail

    def stop(self) -> None:
        process = self.process
        if process is None or process.proc is None:
            return
        pgid = process.proc.pid  # start_new_session: the group id is the leader's pid
        if process.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while _group_alive(pgid) and time.monotonic() < deadline:
            process.proc.poll()  # reap the leader so the group can empty
            time.sleep(0.1)
        process.stop()  # SIGKILL to whatever of the group is left, close the log
        self.process = None
        deadline = time.monotonic() + 10
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        from streaming.jobs.minicluster import cleanup_tmp

        cleanup_tmp(self.settings)
