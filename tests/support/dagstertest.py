"""The Dagster part (UI + daemon) of one test, and the GraphQL calls an operator's UI makes.

A test starts the Dagster services with :class:`ops.stack.dagster.Dagster`, exactly as
``make up`` does, but on a free port and with ``DAGSTER_HOME`` under the test's
data folder, so its runs, backfills and sensor states are its own. The helpers
below speak the webserver's GraphQL API, the one the UI's buttons use: stop the
sensors (so no refresh run races the test), launch an asset backfill, read a
backfill's status.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from ece.settings import REPO_ROOT, Settings
from ops.stack.base import free_port
from ops.stack.dagster import Dagster, write_instance

IN_PROGRESS = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]


@contextmanager
def dagster_part(settings: Settings) -> Iterator[Dagster]:
    """The Dagster part for these settings on a free port, stopped (whole group) afterwards."""
    part = Dagster(settings.model_copy(update={"dagster_port": free_port()}))
    try:
        part.start()
        yield part
    finally:
        part.stop()


def ece(*args: str, timeout: float = 900) -> str:
    """One ``ece`` command as its own process, as an operator types it; returns its output.

    The environment is this process's (the ``lake_settings`` fixture exports its ECE_*).
    """
    proc = subprocess.run([sys.executable, "-m", "ops", *args], cwd=REPO_ROOT,
                          env=os.environ.copy(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def refresh_recorded(settings: Settings, *args: str) -> str:
    """``ece warehouse refresh`` recorded in the instance the Dagster part will use.

    Run before the part starts, it also keeps the sensor's first tick from starting a
    refresh of its own: nothing waits on the topics and today's partitions are fresh.
    """
    write_instance(settings)
    out = ece("warehouse", "refresh", *args)
    assert "refresh succeeded" in out, out
    return out


def graphql(url: str, query: str, variables: dict[str, Any] | None = None,
            timeout: float = 30) -> dict[str, Any]:
    """One GraphQL call; a transport or GraphQL error fails loudly."""
    response = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}},
                          timeout=timeout)
    response.raise_for_status()
    body = response.json()
    assert not body.get("errors"), body["errors"]
    return dict(body["data"])


SENSORS = """
{ repositoriesOrError { ... on RepositoryConnection { nodes {
    sensors { id name sensorState { status } } } } } }
"""
STOP_SENSOR = """
mutation($id: String!) { stopSensor(id: $id) {
    __typename ... on StopSensorMutationResult { instigationState { status } }
    ... on PythonError { message } } }
"""


def stop_sensors(url: str) -> list[str]:
    """Stop every running sensor (as the UI's toggle does); returns their names."""
    stopped = []
    for repo in graphql(url, SENSORS)["repositoriesOrError"]["nodes"]:
        for sensor in repo["sensors"]:
            if sensor["sensorState"]["status"] != "RUNNING":
                continue
            result = graphql(url, STOP_SENSOR, {"id": sensor["id"]})["stopSensor"]
            assert result["__typename"] == "StopSensorMutationResult", result
            stopped.append(sensor["name"])
    return stopped


RUNS = """
query($statuses: [RunStatus!]) { runsOrError(filter: {statuses: $statuses}) {
    ... on Runs { results { runId status tags { key value } } } } }
"""


def runs(url: str, statuses: list[str] | None = None) -> list[dict[str, Any]]:
    """Runs as the UI's run list shows them (newest first), optionally by status."""
    return list(graphql(url, RUNS, {"statuses": statuses})["runsOrError"]["results"])


TERMINATE = """
mutation($id: String!) { terminateRun(runId: $id) { __typename } }
"""


def wait_until_idle(url: str, timeout: float) -> None:
    """Wait until no run is queued or in flight."""
    deadline = time.monotonic() + timeout
    while runs(url, IN_PROGRESS):
        assert time.monotonic() < deadline, f"runs still in flight: {runs(url, IN_PROGRESS)}"
        time.sleep(1)


def quiesce(url: str, timeout: float = 300) -> list[str]:
    """Stop the sensors and terminate the runs their first tick started (the UI's "Terminate").

    A test then knows every run in the instance is its own. Returns the sensors stopped.
    """
    stopped = stop_sensors(url)
    for run in runs(url, IN_PROGRESS):
        graphql(url, TERMINATE, {"id": run["runId"]})
    wait_until_idle(url, timeout)
    return stopped


LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
    __typename ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack } ... on InvalidSubsetError { message } } }
"""


def launch_backfill(url: str, asset_paths: list[list[str]], partitions: list[str],
                    title: str) -> str:
    """An asset backfill of these partitions (the UI's "Launch backfill"): the daemon runs it."""
    result = graphql(url, LAUNCH_BACKFILL, {"params": {
        "assetSelection": [{"path": p} for p in asset_paths], "partitionNames": partitions,
        "title": title}})["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    return str(result["backfillId"])


BACKFILL = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill { id status numPartitions } } }
"""


def backfill_status(url: str, backfill_id: str) -> str:
    """REQUESTED while the daemon works on it, then COMPLETED_SUCCESS, COMPLETED_FAILED, ..."""
    return str(graphql(url, BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]["status"])
