"""`/metrics` of an API with two worker processes counts every worker's requests.

Each uvicorn worker is its own process; before multiprocess mode, `/metrics` answered
with the counters of whichever worker took the scrape, so reports undercounted.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from ece.settings import Settings
from ops.stack.api import Api
from ops.stack.base import free_port
from ops.stack.supervisor import Platform

REQUESTS = 60


@pytest.fixture
def two_workers(platform: Platform) -> Iterator[Api]:
    platform.require("migrate", "redis")
    settings: Settings = platform.settings.model_copy(
        update={"api_port": free_port(), "api_workers": 2})
    part = Api(settings)
    part.start()
    try:
        yield part
    finally:
        part.stop()


def _unmatched_404s(metrics: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("ece_http_requests_total{") and 'route="unmatched"' in line \
                and 'status="404"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_sum_the_requests_of_every_worker(two_workers: Api) -> None:
    for _ in range(REQUESTS):  # a new connection each: the kernel spreads them over workers
        assert httpx.get(f"{two_workers.url}/no-such-{uuid.uuid4().hex}", timeout=10
                         ).status_code == 404
    folder = two_workers.settings.api_metrics_dir
    pids = {m.group(1) for p in folder.glob("counter_*.db")
            if (m := re.fullmatch(r"counter_(\d+)\.db", p.name))}
    assert len(pids) == 2, f"both workers should have counted requests: {sorted(pids)}"
    for _ in range(5):  # whichever worker answers the scrape, the figure is the total
        text = httpx.get(f"{two_workers.url}/metrics", timeout=10).text
        assert _unmatched_404s(text) == REQUESTS, text[:2000]
