"""Flink as a stack part: the one job ``streaming.jobs``, in one of two modes.

``ECE_FLINK_MODE=minicluster`` (default): ``python -m streaming.jobs`` runs the job
in a local MiniCluster (one JVM). ``session``: a standalone session cluster (see
ops/stack/flink_session.py) and the job submitted to it with ``flink run``;
``ECE_FLINK_JOBMANAGER=host:port`` submits to an existing cluster and starts none.

Ready means the job is RUNNING with every task running, as reported by the
MiniCluster's own REST API (GET /jobs/overview), not merely that the process
is up: the JVM takes ~10 s to start, restore state and deploy tasks.

Stopping must leave nothing behind. In session mode the job is cancelled (its last
checkpoint is retained) and the TaskManagers and the JobManager are stopped. In
minicluster mode PyFlink starts its JVM in our process group,
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

from ece.settings import REPO_ROOT, Settings
from ops.stack import flink_session
from ops.stack.base import ManagedProcess, Part, PartFailed, wait_until

JOB_NAME = "ece-streams"
READY_TIMEOUT_S = 420.0  # ~12 s idle; 70-90 s under a full test load; over 180 s at load 25-40
STOP_GRACE_S = 20.0
TERMINAL = ("CANCELED", "FAILED", "FINISHED")
SUBMIT_TIMEOUT_S = 900.0  # flink run: a client JVM, a Python program; over 5 min at load 30


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
    # A restarted local Redis is empty: Redis.after_restart bumps the market_data generation
    # and the restarted job re-reads its topics into it (what `ece rebuild-cache` does).
    restart_with = ("broker", "redis")

    def __init__(self, settings: Settings, *, external: bool = False) -> None:
        super().__init__(settings, external=external)
        self.cluster: flink_session.SessionCluster | None = None

    @property
    def session(self) -> bool:
        """Submit to a session cluster (ours, or the one ECE_FLINK_JOBMANAGER names)."""
        return self.settings.flink_mode == "session" or self.settings.flink_jobmanager is not None

    @property
    def url(self) -> str:
        explicit = self.settings.flink_rest_url if self.external else None
        if explicit is None and self.settings.flink_jobmanager is not None:
            explicit = f"http://{self.settings.flink_jobmanager}"
        return (explicit or f"http://127.0.0.1:{self.settings.flink_rest_port}").rstrip("/")

    def start(self) -> None:
        if self.external:
            return
        try:
            if self.session:
                self._start_session()
            else:
                self._start_minicluster()
        except BaseException:
            self.stop()  # the supervisor stops only parts that started: leave nothing running
            raise

    def _start_minicluster(self) -> None:
        argv = [sys.executable, "-m", "streaming.jobs"]
        self.process = ManagedProcess(self.name, argv, self.log_path, cwd=REPO_ROOT,
                                      env=self.child_environment(),
                                      stop_signal=signal.SIGTERM, stop_timeout=STOP_GRACE_S)
        proc = self.process.start()
        wait_until(lambda: self.health()[0], READY_TIMEOUT_S, f"job {JOB_NAME} RUNNING",
                   self.name, proc, self.log_path,
                   fix="read the log; the JVM's own log is data/logs/flink-*-python-*.log")

    def _start_session(self) -> None:
        from streaming.jobs.jars import ensure_jars

        jars = ensure_jars()
        remote = self.settings.flink_jobmanager is not None
        watched = None  # the JobManager, when it is ours: its death fails the wait at once
        if not remote:
            self.cluster = flink_session.SessionCluster(self.settings, jars)
            self.cluster.start()
            jm = self.cluster.jobmanager
            assert jm is not None and jm.proc is not None
            watched = jm.proc
            wanted = self.settings.flink_taskmanagers
            wait_until(lambda: self.taskmanagers() >= wanted, READY_TIMEOUT_S,
                       f"{wanted} TaskManagers registered", self.name, jm.proc, jm.log_path,
                       fix="read data/logs/flink-jobmanager.log and flink-taskmanager-*.log")
        elif self.health()[0]:
            return  # our job already runs there: a second copy would double every write
        else:
            flink_session.prepare_folders(self.settings, jars)  # the client's conf and lib
        self._submit(ship_jars=remote)
        wait_until(lambda: self.health()[0], READY_TIMEOUT_S, f"job {JOB_NAME} RUNNING",
                   self.name, watched, self.log_path,
                   fix="read the log and data/logs/flink-taskmanager-*.log")

    def _submit(self, ship_jars: bool) -> None:
        """``flink run -d``: the client builds the job graph, uploads it and exits."""
        argv = flink_session.submit_argv(self.settings,
                                         job_args=("--ship-jars",) if ship_jars else ())
        env = {**self.child_environment(), **flink_session.flink_environment(self.settings)}
        submit = ManagedProcess(f"{self.name}-submit", argv, self.log_path, cwd=REPO_ROOT,
                                env=env)
        proc = submit.start()
        try:
            code = proc.wait(SUBMIT_TIMEOUT_S)
        except Exception as exc:
            raise PartFailed(self.name, f"flink run did not finish: {exc}",
                             "read the log", self.log_path) from exc
        finally:
            submit.stop()
        if code != 0:
            raise PartFailed(self.name, f"flink run exited with code {code}", "read the log",
                             self.log_path)

    def taskmanagers(self) -> int:
        """TaskManagers registered with the JobManager (GET /overview)."""
        response = httpx.get(f"{self.url}/overview", timeout=2.0)
        response.raise_for_status()
        return int(response.json().get("taskmanagers", 0))

    def died(self) -> bool:
        """Session mode: the JobManager or every TaskManager is gone (one lost TM is not)."""
        if not self.session:
            return super().died()
        cluster = self.cluster
        if cluster is None or cluster.jobmanager is None:
            return False
        return not cluster.jobmanager.alive or cluster.alive_taskmanagers() == 0

    def _cancel_session_job(self) -> None:
        """Cancel our job (its last checkpoint is retained) and wait until it has ended."""
        with contextlib.suppress(httpx.HTTPError, ValueError):
            job = self.job()
            if job is None or job["state"] in TERMINAL:
                return
            httpx.patch(f"{self.url}/jobs/{job['jid']}", params={"mode": "cancel"},
                        timeout=5.0)
            deadline = time.monotonic() + STOP_GRACE_S
            while time.monotonic() < deadline:
                state = httpx.get(f"{self.url}/jobs/{job['jid']}", timeout=2.0).json()["state"]
                if state in TERMINAL:
                    return
                time.sleep(0.2)

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
        if self.session:
            self._cancel_session_job()
            if self.cluster is not None:
                self.cluster.stop()
                self.cluster = None
            return
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
