"""The Dagster stack part: UI + daemon start, show our assets, and stop leaving nothing.

Slow (``dagster dev`` imports the code location in three processes: 15-20 s on an
idle 2-core machine, minutes under load), hence the e2e marker.
"""

from __future__ import annotations

import os

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
        assert len(live_group_members(pgid)) >= 3  # dev, webserver, daemon (+ code server)
    finally:
        part.stop()
    assert live_group_members(pgid) == []
    assert not part.health()[0]
    assert os.path.exists(part.log_path)
