"""The Dagster stack part: UI + daemon start, show our assets, and stop leaving nothing.

Slow (the code server imports the code location, the webserver and daemon import
Dagster: 15-20 s on an idle 2-core machine, minutes under load), hence the e2e marker.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from ece.settings import Settings
from ops.stack.base import live_group_members
from ops.stack.dagster import Dagster, dagster_home


@pytest.mark.e2e
def test_dagster_part_starts_and_stops_cleanly(stack_settings: Settings) -> None:
    part = Dagster(stack_settings)
    try:
        part.start()
        ok, detail = part.health()
        assert ok, detail
        assert (dagster_home(stack_settings) / "dagster.yaml").exists()
        nodes = httpx.post(f"{part.url}/graphql", timeout=10, json={
            "query": "{ assetNodes { assetKey { path } } }"}).json()["data"]["assetNodes"]
        assert ["silver", "cards"] in [n["assetKey"]["path"] for n in nodes]
        assert part.process is not None and part.process.proc is not None
        pgid = part.process.proc.pid
        # one code server shared by the webserver and the daemon, and nothing else that
        # loads Dagster (no `dagster dev`, no code-server proxy: 180 MiB between them)
        services = [_service(pid) for pid in live_group_members(pgid) if pid != pgid]
        assert sorted(s for s in services if s != "a run") == [
            "code server", "daemon", "webserver"], services
    finally:
        part.stop()
    assert live_group_members(pgid) == []
    assert not part.health()[0]
    assert os.path.exists(part.log_path)


def _service(pid: int) -> str:
    """Which Dagster service a process of the part is, from its command line."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    if argv[1:5] == ["-m", "dagster", "api", "grpc"]:
        return "code server"
    if argv[1:4] == ["-m", "dagster", "api"] and argv[4].startswith("execute"):
        return "a run"  # a sensor's run may have started meanwhile
    if argv[1:3] == ["-m", "dagster_webserver"]:
        return "webserver"
    if argv[1:4] == ["-m", "dagster._daemon", "run"]:
        return "daemon"
    return " ".join(argv)
