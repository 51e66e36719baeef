"""The backup drill: data in every part that holds state, `ece backup create` while it runs,
writes after the backup, `ece backup restore` into a new data folder, a platform on the
restored folder: it serves exactly what the backup held (rows, balances, cards, the chain,
Arweave, the lake and its snapshots), nothing written after it.

Runs on private platforms (their own Postgres, broker, CDC, chain, gateway).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from ece.settings import Settings
from ops.stack.supervisor import Platform, free_port_environment

# The drill starts a second platform and restores through a temporary PostgreSQL: minutes.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1500)]

SOURCE_PARTS = ("postgres", "broker", "migrate", "cdc", "solana", "arweave")
RESTORED_PARTS = ("postgres", "migrate", "solana", "arweave")


def _private(data_dir: Path) -> Platform:
    environment = {**free_port_environment(), "ECE_ENV": "test", "ECE_DATA_DIR": str(data_dir)}
    fields = {key.removeprefix("ECE_").lower(): value for key, value in environment.items()}
    return Platform(Settings(**fields), progress=lambda m: print(f"[drill] {m}", flush=True))


@pytest.fixture
def folders() -> Iterator[dict[str, Path]]:
    root = Path(tempfile.mkdtemp(prefix="ece-test-backup-"))
    root.chmod(0o755)
    paths = {name: root / name for name in ("source", "backup", "restored")}
    paths["source"].mkdir()
    try:
        yield paths
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _ece(settings: Settings, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "ops", *args], capture_output=True, text=True,
                          timeout=600, check=False,
                          env={"PATH": "/usr/bin:/bin", "COLUMNS": "200",
                               **settings.as_environment()})
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def _write_business_data(settings: Settings, tag: str) -> None:
    """A user with a deposit (a balance through the ledger) and a card."""
    with psycopg.connect(settings.database_url) as db, db.transaction():
        user = db.execute(
            "INSERT INTO users (email, username, password_hash) VALUES (%s, %s, 'x') RETURNING id",
            (f"{tag}-{uuid.uuid4().hex[:6]}@example.com", f"{tag}_{uuid.uuid4().hex[:6]}"),
        ).fetchone()[0]  # type: ignore[index]
        db.execute("INSERT INTO cards (name, set_name, number, rarity, owner_id) "
                   "VALUES (%s, 'Drill', '1', 'epic', %s)", (f"card-{tag}", user))
        account = db.execute("INSERT INTO ledger_accounts (user_id, kind) "
                             "VALUES (%s, 'user_available') RETURNING id", (user,)).fetchone()[0]  # type: ignore[index]
        external = db.execute("SELECT id FROM ledger_accounts "
                              "WHERE kind = 'external_deposits'").fetchone()[0]  # type: ignore[index]
        tx = db.execute("INSERT INTO ledger_transactions (kind) VALUES ('deposit') "
                        "RETURNING id").fetchone()[0]  # type: ignore[index]
        db.execute("INSERT INTO ledger_entries (transaction_id, account_id, amount_cents) "
                   "VALUES (%s, %s, 12345), (%s, %s, -12345)", (tx, account, tx, external))


def _fingerprint(settings: Settings) -> dict[str, tuple[int, str]]:
    """Row count and an md5 over every row, per table of the application schema."""
    with psycopg.connect(settings.database_url) as db:
        tables = [r[0] for r in db.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        result = {}
        for table in tables:
            every_row = "coalesce(string_agg(t::text, ',' ORDER BY t::text), '')"
            count, digest = db.execute(
                f'SELECT count(*), md5({every_row}) FROM "{table}" t').fetchone()  # type: ignore[misc]
            result[table] = (int(count), str(digest))
    return result


def _rpc(settings: Settings, method: str, *params: Any) -> Any:
    body = httpx.post(settings.solana_rpc_url, timeout=10, json={
        "jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).json()
    assert "error" not in body, body
    return body["result"]


def _balance(settings: Settings, address: str) -> int:
    return int(_rpc(settings, "getBalance", address, {"commitment": "confirmed"})["value"])


def _lake(settings: Settings, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    from warehouse.lake import connect

    lake = connect(settings, read_only=True)
    try:
        return [tuple(row) for row in lake.execute(sql, list(params)).fetchall()]
    finally:
        lake.close()


def _arweave_info(settings: Settings) -> dict[str, Any]:
    return httpx.get(f"{settings.arweave_url.rstrip('/')}/info", timeout=10).json()  # type: ignore[no-any-return]


def _address(seed: int) -> str:
    from solders.keypair import Keypair  # type: ignore[import-not-found]

    return str(Keypair.from_seed(bytes([seed]) * 32).pubkey())


def test_backup_restore_drill(folders: dict[str, Path]) -> None:
    source = _private(folders["source"])
    restored: Platform | None = None
    try:
        source.start(SOURCE_PARTS)
        settings = source.settings
        for i in range(3):
            _write_business_data(settings, f"before{i}")
        _ece(settings, "warehouse", "refresh", "--no-record")
        _write_business_data(settings, "between")
        _ece(settings, "warehouse", "refresh", "--no-record")  # a second lake snapshot
        wallet = _address(7)
        _rpc(settings, "requestAirdrop", wallet, 5_000_000)
        deadline = time.monotonic() + 30
        while _balance(settings, wallet) != 5_000_000:
            assert time.monotonic() < deadline, "airdrop not confirmed"
            time.sleep(0.3)
        settings.secret("jwt_secret")  # a generated secret in data/secrets

        expected_rows = _fingerprint(settings)
        snapshots = _lake(settings, "SELECT max(snapshot_id) FROM ducklake_snapshots('ece')")[0][0]
        lake_cards = _lake(settings, "SELECT count(*) FROM ece.bronze.cards")
        lake_first = _lake(settings, "SELECT count(*) FROM ece.bronze.cards AT (VERSION => ?)",
                           snapshots - 1)
        arweave_height = _arweave_info(settings)["height"]

        started = time.monotonic()
        backup = _ece(settings, "backup", "create", "--to", str(folders["backup"]))
        took_backup = time.monotonic() - started
        print(backup.stderr)
        manifest = json.loads((folders["backup"] / "manifest.json").read_text())
        print(f"[drill] backup: {manifest['total_bytes'] / 1e6:.1f} MB, "
              f"{len(manifest['files'])} files, {took_backup:.1f}s (command)")
        assert manifest["lake"]["snapshot_id"] == snapshots
        assert any(name.startswith("lake/") and name.endswith(".parquet")
                   for name in manifest["files"])
        assert any(name.startswith("solana/") for name in manifest["files"])
        assert any(name.startswith("secrets/") for name in manifest["files"])

        # Written after the backup: must not be in the restored platform.
        _write_business_data(settings, "after")
        _rpc(settings, "requestAirdrop", wallet, 1_000)

        listed = _ece(settings, "backup", "list", "--in", str(folders["backup"].parent))
        assert "backup" in listed.stdout and "MB" in listed.stdout, listed.stdout
        assert "ok:" in _ece(settings, "backup", "verify", str(folders["backup"])).stdout

        # Restoring into a non-empty folder is refused.
        refused = _ece(settings, "backup", "restore", str(folders["backup"]), "--data-dir",
                       str(folders["source"]), ok=False)
        assert refused.returncode == 1 and "not empty" in refused.stderr, refused.stderr
        source.stop()

        started = time.monotonic()
        restored = _private(folders["restored"])
        _ece(restored.settings, "backup", "restore", str(folders["backup"]))
        print(f"[drill] restore: {time.monotonic() - started:.1f}s (command)")
        restored.start(RESTORED_PARTS)
        rs = restored.settings
        assert _fingerprint(rs) == expected_rows
        assert _balance(rs, wallet) == 5_000_000
        assert _arweave_info(rs)["height"] >= arweave_height
        assert _lake(rs, "SELECT max(snapshot_id) FROM ducklake_snapshots('ece')")[0][0] \
            == snapshots
        assert _lake(rs, "SELECT count(*) FROM ece.bronze.cards") == lake_cards
        assert _lake(rs, "SELECT count(*) FROM ece.bronze.cards AT (VERSION => ?)",
                     snapshots - 1) == lake_first
        for name in ("jwt_secret",):
            assert (folders["restored"] / "secrets" / name).read_text() == \
                (folders["source"] / "secrets" / name).read_text()
        assert oct((folders["restored"] / "secrets").stat().st_mode & 0o777) == "0o700"

        # A damaged backup is noticed.
        victim = next(p for p in (folders["backup"] / "lake").rglob("*.parquet"))
        victim.write_bytes(base64.b64encode(os.urandom(16)))
        bad = _ece(rs, "backup", "verify", str(folders["backup"]), ok=False)
        assert bad.returncode == 1 and "differs" in bad.stderr, bad.stderr
    finally:
        if restored is not None:
            restored.stop()
        source.stop()
