"""`make down` then `make up` with data in it: the in-memory broker comes back empty
(a new epoch), and still nothing is skipped and nothing is counted twice.

Runs on a private platform (its own Postgres, Redis, broker, CDC and Flink) so
restarting it cannot disturb the session's parts.
"""

import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from ece.contracts import card_cache
from ece.settings import Settings
from ops.stack.broker import cluster_id
from ops.stack.supervisor import Platform, free_port_environment

pytestmark = pytest.mark.e2e

PARTS = ("postgres", "redis", "broker", "migrate", "cdc", "flink")


@pytest.fixture
def private() -> Iterator[Platform]:
    data_dir = Path(tempfile.mkdtemp(prefix="ece-test-restart-"))
    data_dir.chmod(0o755)
    environment = {**free_port_environment(), "ECE_ENV": "test", "ECE_DATA_DIR": str(data_dir)}
    fields = {key.removeprefix("ECE_").lower(): value for key, value in environment.items()}
    plat = Platform(Settings(**fields), progress=lambda m: print(f"[restart] {m}", flush=True))
    try:
        yield plat
    finally:
        plat.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _wait(check, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _cached_version(settings: Settings, card_id: str) -> int | None:
    raw = redis.Redis.from_url(settings.redis_url).get(card_cache.document_key(card_id))
    return card_cache.decode_entry(raw)[1] if raw is not None else None


def _ece(settings: Settings, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "ops", *args], capture_output=True, text=True,
                          timeout=300, check=False,
                          env={"PATH": "/usr/bin:/bin", **settings.as_environment()})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_restart_with_data_skips_nothing_and_counts_nothing_twice(private: Platform) -> None:
    private.start(PARTS)
    settings = private.settings
    with psycopg.connect(settings.database_url, autocommit=True) as db:
        owner = db.execute(
            "INSERT INTO users (email, username, password_hash) VALUES (%s, %s, 'x') RETURNING id",
            (f"r-{uuid.uuid4().hex[:8]}@example.com", f"r_{uuid.uuid4().hex[:8]}"),
        ).fetchone()[0]  # type: ignore[index]
        card_id = str(db.execute(
            "INSERT INTO cards (name, set_name, number, rarity, owner_id) "
            "VALUES ('Before', 'Restart', '1', 'epic', %s) RETURNING id", (owner,),
        ).fetchone()[0])  # type: ignore[index]
    _wait(lambda: _cached_version(settings, card_id) == 1, 120, "Flink to cache version 1")
    _ece(settings, "warehouse", "refresh")
    first_epoch = cluster_id(settings.kafka_bootstrap)

    private.stop()  # `make down`: Redis and the broker lose everything they held
    private.start(PARTS)  # `make up`
    assert cluster_id(settings.kafka_bootstrap) != first_epoch
    # The new, empty broker was refilled by a snapshot, and Flink read it from the start.
    _wait(lambda: _cached_version(settings, card_id) == 1, 120, "the re-snapshot in Redis")
    with psycopg.connect(settings.database_url, autocommit=True) as db:
        db.execute("UPDATE cards SET name = 'After' WHERE id = %s", (card_id,))
    _wait(lambda: _cached_version(settings, card_id) == 2, 60, "version 2 in Redis")

    _ece(settings, "warehouse", "refresh")
    from warehouse.lake import connect

    lake = connect(settings, read_only=True)
    try:
        silver = lake.execute("SELECT name, version FROM ece.silver.cards WHERE id = ?",
                              [card_id]).fetchall()
        epochs, events = lake.execute(
            "SELECT count(DISTINCT _epoch), count(*) FROM ece.bronze.cards WHERE id = ?",
            [card_id]).fetchone()  # type: ignore[misc]
    finally:
        lake.close()
    assert [(name, int(version)) for name, version in silver] == [("After", 2)]  # once
    assert epochs == 2  # landed from both broker lifetimes
    assert events >= 3  # c (first epoch), then r and u (second epoch)
