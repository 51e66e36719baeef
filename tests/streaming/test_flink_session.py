"""The job on a standalone Flink session cluster: 2 TaskManagers, parallelism 2, one
TaskManager killed with SIGKILL while sales stream in.

A private stack (its own Postgres, Redis, broker, CDC, API and delivery worker) with
``ECE_FLINK_MODE=session``: ``ece check`` then covers every card and every market
figure in it. After the kill, the JobManager restarts the job from its checkpoint on
the surviving TaskManager, and: every sale's ``listing_sold`` is stored exactly once
(seqs 1..n), the buyer got every ``card_received``, the hot figures count every sale
once, and the card cache and all market figures equal Postgres (``ece check``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ece.settings import Settings
from ops.stack import flink_session
from ops.stack.flink import Flink
from ops.stack.supervisor import Platform, free_port_environment
from tests.support.apitest import PASSWORD, Account, register_and_login, unique
from tests.support.notificationtest import wait_for

pytestmark = pytest.mark.slow

SALES = 24
PIPELINE_S = 240.0  # a loaded 2-core machine: restarts and catch-up take minutes
PARALLELISM = 2


@pytest.fixture(scope="module")
def session_stack() -> Iterator[Platform]:
    """A private stack whose Flink is a session cluster (2 TMs, parallelism 2)."""
    data_dir = Path(tempfile.mkdtemp(prefix="ece-test-flink-session-"))
    data_dir.chmod(0o755)
    environment = {**free_port_environment(), "ECE_ENV": "test", "ECE_DATA_DIR": str(data_dir),
                   "ECE_RATE_LIMIT_IP": "1000000", "ECE_FLINK_MODE": "session",
                   "ECE_FLINK_TASKMANAGERS": "2", "ECE_FLINK_PARALLELISM": str(PARALLELISM)}
    fields: dict[str, Any] = {key.removeprefix("ECE_").lower(): value
                              for key, value in environment.items()}
    platform = Platform(Settings(**fields),
                        progress=lambda msg: print(f"[flink-session stack] {msg}", flush=True))
    try:
        platform.require("api", "cdc", "delivery", "flink")
        yield platform
    finally:
        platform.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _ece(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``ece`` CLI as an operator runs it, against the private stack."""
    return subprocess.run([sys.executable, "-m", "ops", *args], capture_output=True, text=True,
                          timeout=600, check=False,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                               "COLUMNS": "220", **settings.as_environment()})


async def _admin(http: httpx.AsyncClient, settings: Settings) -> Account:
    username = unique("admin")
    done = _ece(settings, "admin", "create", "--email", f"{username}@example.com",
                "--username", username, "--password", PASSWORD)
    assert done.returncode == 0, done.stderr
    r = await http.post("/auth/login", json={"login": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    return Account("", username, "", body["access_token"], body["refresh_token"])


def _rest(part: Flink, path: str) -> Any:
    r = httpx.get(f"{part.url}{path}", timeout=5.0)
    r.raise_for_status()
    return r.json()


def _kill_busy_taskmanager(part: Flink) -> str:
    """SIGKILL (the whole process group of) a TaskManager that runs some of the job."""
    busy = [tm["id"] for tm in _rest(part, "/taskmanagers")["taskmanagers"]
            if tm["freeSlots"] < tm["slotsNumber"]]
    assert part.cluster is not None and busy, "no TaskManager runs the job"
    index = next(i for i in range(len(part.cluster.taskmanagers))
                 if flink_session.taskmanager_id(i) in busy)
    proc = part.cluster.taskmanagers[index].proc
    assert proc is not None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(15)
    return flink_session.taskmanager_id(index)


async def _stored(http: httpx.AsyncClient, account: Account) -> list[dict[str, Any]]:
    r = await http.get("/notifications", params={"after_seq": 0, "limit": 200},
                       headers=account.auth)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def _hot(http: httpx.AsyncClient, path: str, params: dict[str, Any]) -> dict[str, Any]:
    r = await http.get(path, params=params)
    assert r.status_code == 200, r.text
    return dict(r.json()) if r.headers["x-data-source"] == "hot" else {}


async def test_losing_a_taskmanager_loses_nothing_and_doubles_nothing(
        session_stack: Platform) -> None:
    flink = session_stack.part("flink")
    assert isinstance(flink, Flink) and flink.cluster is not None
    assert _rest(flink, "/overview")["taskmanagers"] == 2
    job = flink.job()
    assert job is not None
    vertices = _rest(flink, f"/jobs/{job['jid']}")["vertices"]
    assert max(v["parallelism"] for v in vertices) == PARALLELISM

    settings = session_stack.settings
    async with httpx.AsyncClient(base_url=session_stack.part("api").url, timeout=30) as http:
        admin = await _admin(http, settings)
        seller, buyer = await register_and_login(http), await register_and_login(http)
        r = await http.post("/admin/deposits", headers=admin.auth, json={
            "user_id": buyer.id, "amount_cents": SALES * 1_000, "reference": unique("dep")})
        assert r.status_code == 201, r.text
        listings, set_name = [], unique("Session ")
        for i in range(SALES):
            r = await http.post("/cards", headers=admin.auth, json={
                "name": f"Session Card {i}", "set_name": set_name, "number": unique("n")[:10],
                "rarity": "common", "owner_id": seller.id})
            assert r.status_code == 201, r.text
            r = await http.post("/listings", headers=seller.auth,
                                json={"card_id": r.json()["id"], "price_cents": 500})
            assert r.status_code == 201, r.text
            listings.append(r.json()["id"])

        async def buy(listing_id: str) -> None:
            r = await http.post(f"/listings/{listing_id}/purchase", headers=buyer.auth)
            assert r.status_code == 201, r.text

        third = SALES // 3
        for listing_id in listings[:third]:
            await buy(listing_id)
        # The job has seen the first third (so a checkpoint holds some state), then a
        # TaskManager dies halfway through the second third.
        await wait_for(lambda: _count_sold(http, seller, third), PIPELINE_S, "first third")
        for listing_id in listings[third:third + third // 2]:
            await buy(listing_id)
        killed = _kill_busy_taskmanager(flink)
        for listing_id in listings[third + third // 2:2 * third]:
            await buy(listing_id)
        await wait_for(lambda: _restarted(flink, job["jid"], killed), PIPELINE_S,
                       "the job RUNNING again without the killed TaskManager", interval=1.0)
        for listing_id in listings[2 * third:]:
            await buy(listing_id)

        await wait_for(lambda: _count_sold(http, seller, SALES), PIPELINE_S, "every sale")
        await asyncio.sleep(5)  # a duplicate would have been stored by now
        stored = await _stored(http, seller)
        sold = [n for n in stored if n["kind"] == "listing_sold"]
        assert sorted(n["payload"]["listing_id"] for n in sold) == sorted(listings)
        assert len({n["id"] for n in stored}) == len(stored)
        assert [n["seq"] for n in stored] == list(range(1, len(stored) + 1))
        received = [n for n in await _stored(http, buyer) if n["kind"] == "card_received"]
        assert len(received) == SALES

        # Every sale counted exactly once by the restored window and board state.
        stats = await wait_for(lambda: _settled(http, "/market/stats", {"set_name": set_name},
                                                "sales_24h", SALES),
                               PIPELINE_S, "the set's stats")
        assert stats["sales_24h"] == SALES and stats["volume_24h_cents"] == SALES * 500
        board = await _hot(http, "/leaderboards/traders", {"limit": 100})
        scores = {e["user_id"]: e["score"] for e in board["entries"]}
        assert scores[buyer.id] == SALES * 500

    # Every card document and every market figure in Redis equals Postgres.
    done = _ece(settings, "check", "--json", "--only", "cards", "--only", "market",
                "--settle", "60")
    report = json.loads(done.stdout) if done.stdout.strip() else {}
    assert done.returncode == 0, (done.stderr[-2000:], [
        c for c in report.get("comparisons", []) if c.get("verdict") != "agree"])


async def _count_sold(http: httpx.AsyncClient, seller: Account, count: int) -> bool:
    stored = await _stored(http, seller)
    return len([n for n in stored if n["kind"] == "listing_sold"]) >= count


async def _settled(http: httpx.AsyncClient, path: str, params: dict[str, Any], field: str,
                   value: int) -> dict[str, Any] | None:
    body = await _hot(http, path, params)
    return body if body.get(field, -1) >= value else None


def _restarted(flink: Flink, jid: str, killed: str) -> bool:
    """The same job RUNNING again, every task up, the killed TaskManager gone from it."""
    ok, _ = flink.health()
    alive = {tm["id"] for tm in _rest(flink, "/taskmanagers")["taskmanagers"]}
    exceptions = _rest(flink, f"/jobs/{jid}/exceptions").get("exceptionHistory", {})
    failed = bool(exceptions.get("entries"))
    job = flink.job()
    return ok and killed not in alive and failed and job is not None and job["jid"] == jid


def test_stopping_leaves_no_flink_process(session_stack: Platform) -> None:
    """After the stack stops, no JVM of the cluster runs (checked at module end, below)."""
    flink = session_stack.part("flink")
    assert isinstance(flink, Flink) and flink.cluster is not None
    pids = [p.proc.pid for p in [flink.cluster.jobmanager, *flink.cluster.taskmanagers]
            if p is not None and p.proc is not None and p.alive]
    conf = str(flink_session.conf_dir(session_stack.settings))
    flink.stop()
    time.sleep(1)
    left = [pid for pid in pids if Path(f"/proc/{pid}").exists()
            and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
    assert not left, f"processes left: {left}"
    stray = [cmd for cmd in (p.read_bytes().replace(b"\0", b" ").decode(errors="replace")
                             for p in Path("/proc").glob("[0-9]*/cmdline")
                             if p.exists() and _readable(p))
             if conf in cmd]
    assert not stray, f"JVMs of this cluster still run: {stray}"


def _readable(path: Path) -> bool:
    try:
        path.read_bytes()
    except OSError:
        return False
    return True
