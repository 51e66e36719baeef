"""Dagster (code server, UI, daemon) as a stack part: :mod:`ops.stack.dagster_services`.

``DAGSTER_HOME`` lives under ``data/dagster`` (runs, schedules and sensor state
survive restarts; ``make clean`` removes them). Ready means the webserver answers
AND the code location loaded: a broken definitions module would otherwise show a
green part and an error page.

The services are started through this module's ``main`` so that SIGINT and
SIGTERM are back to their default dispositions first: a supervisor started in
the background (``make up &``, CI) has them ignored, ignored signals survive
``exec``, and the services would then never stop on SIGTERM.

Surviving a kill -9 of the part mid-run (``dagster.yaml`` below, and ``main``):
the run workers die with the part's process group, and nothing would ever report
their runs' end. Before the services start again, ``main`` closes the runs whose
worker is gone (:func:`orchestration.backfill.close_orphaned_runs`); run retries
then re-execute them from the failure (a crashed run only: a failed step is not
retried, it is a real failure to look at), so a backfill resumes and completes;
run monitoring fails a run that never got a worker (stuck STARTING).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import httpx

from ece.settings import REPO_ROOT, Settings, get_settings
from ops.stack.base import ManagedProcess, Part, PartFailed, wait_until

READY_TIMEOUT_S = 180.0  # webserver + daemon + code location import on a loaded 2-core box
DEFINITIONS = "orchestration.definitions"  # its `defs`; workspace.yaml names it too
INSTANCE_YAML = """\
# Written by ops.stack.dagster on each start: edit that module, not this file.
telemetry:
  enabled: false
nux:
  enabled: false
code_servers:
  local_startup_timeout: 180
run_monitoring:
  enabled: true
  start_timeout_seconds: 300
  poll_interval_seconds: 30
run_retries:
  enabled: true
  max_retries: 2
  retry_on_asset_or_op_failure: false
"""
LOCATION_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def dagster_home(settings: Settings) -> Path:
    return settings.data_dir / "dagster"


def write_instance(settings: Settings) -> Path:
    """Create ``DAGSTER_HOME`` with its ``dagster.yaml`` (telemetry and the "join the
    community" pop-up off, patient code server, run monitoring, retries of crashed runs)."""
    home = dagster_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    return home


def child_environment(settings: Settings) -> dict[str, str]:
    """The settings the code location must see, passed explicitly (not only inherited)."""
    return {
        **settings.as_environment(),
        "DAGSTER_HOME": str(dagster_home(settings)),
        "PYTHONUNBUFFERED": "1",
    }


class Dagster(Part):
    name = "dagster"
    depends_on = ("postgres", "broker")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.dagster_port}"

    def start(self) -> None:
        if self.external:
            return
        write_instance(self.settings)
        argv = [sys.executable, "-m", "ops.stack.dagster", "--module", DEFINITIONS,
                "--host", "127.0.0.1", "--port", str(self.settings.dagster_port)]
        # SIGINT is what Ctrl-C sends: every service stops on it. The group is
        # SIGKILLed after the timeout regardless.
        self.process = ManagedProcess(self.name, argv, self.log_path, cwd=REPO_ROOT,
                                      env=child_environment(self.settings),
                                      stop_signal=signal.SIGINT, stop_timeout=30)
        proc = self.process.start()
        wait_until(self._ready, READY_TIMEOUT_S, "UI answering with the code location loaded",
                   self.name, proc, self.log_path,
                   fix="read the log; `uv run dagster definitions validate -w workspace.yaml` "
                       "shows code location errors")

    def _ready(self) -> bool:
        if not self.health()[0]:
            return False
        response = httpx.post(f"{self.url}/graphql", json={"query": LOCATION_QUERY}, timeout=5)
        workspace = response.json()["data"]["workspaceOrError"]
        entries = workspace.get("locationEntries") or []
        if not entries or any(e["loadStatus"] != "LOADED" for e in entries):
            return False
        for entry in entries:
            loaded = entry["locationOrLoadError"] or {}
            if loaded.get("__typename") == "PythonError":
                raise PartFailed(self.name, f"code location {entry['name']} failed to load: "
                                 f"{loaded.get('message', '').strip()}", log=self.log_path)
        return True

    def health(self) -> tuple[bool, str]:
        try:
            response = httpx.get(f"{self.url}/server_info", timeout=2)
            response.raise_for_status()
            version = response.json().get("dagster_webserver_version", "?")
        except (httpx.HTTPError, ValueError) as exc:
            return False, f"{self.url}: {exc}"
        if self.process is not None and not self.process.alive:
            return False, f"{self.url} (the Dagster services exited)"
        return True, f"{self.url} (dagster {version})"


def close_orphaned_runs(settings: Settings) -> None:
    """Close the runs a killed part left in flight (no worker of ours is alive yet).

    Skipped (no Dagster import) when the instance has never recorded a run.
    """
    home = dagster_home(settings)
    if not (home / "history" / "runs.db").exists():
        return
    from dagster import DagsterInstance

    from orchestration.backfill import close_orphaned_runs as close

    with DagsterInstance.from_config(str(home)) as instance:
        close(instance, lambda message: print(f"ops.stack.dagster: {message}", flush=True))


def main() -> None:
    """Restore default signal handling, close orphaned runs, then become
    ``python -m ops.stack.dagster_services <args>`` (``exec`` also frees the memory the
    Dagster import took here)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    close_orphaned_runs(get_settings())
    os.execv(sys.executable, [sys.executable, "-m", "ops.stack.dagster_services",
                              *sys.argv[1:]])


if __name__ == "__main__":
    main()
