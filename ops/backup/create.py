"""``ece backup create``: a consistent backup of every part that holds state, while it runs.

Order matters (see ``ops.backup``): the lake catalog and its file list in one snapshot,
then the application database, then the chain, the Arweave gateway and the secrets.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ece.db_roles import OWNER
from ece.settings import Settings
from ops.backup import pg
from ops.backup.manifest import FORMAT, Progress, Say, checksums, copy_file, walk, write_manifest
from ops.stack.postgres import _lake_dbname

SOLANA_SAVE_INTERVAL_S = 2.0  # ops.localchain's default --save-interval
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def default_folder(settings: Settings) -> Path:
    return settings.backups_path / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _timed(say: Say, what: str, started: float) -> None:
    say(f"{what} in {time.monotonic() - started:.1f}s")


def _copy_sqlite(source: Path, target: Path) -> None:
    """An online, consistent copy of a SQLite database (arlocal writes while we copy)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def copy_tree(source: Path, target: Path, say: Say, what: str) -> int:
    """Copy every file under ``source``; SQLite databases through the backup API."""
    files = [p for p in walk(source) if not p.name.endswith(SQLITE_SIDE_FILES)]
    progress = Progress(say, what, len(files))
    for path in files:
        destination = target / path.relative_to(source)
        if path.suffix in (".sqlite", ".sqlite3", ".db") and _is_sqlite(path):
            _copy_sqlite(path, destination)
        else:
            copy_file(path, destination)
        progress.step(path.stat().st_size)
    return len(files)


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(16) == b"SQLite format 3\x00"


def _lake(settings: Settings, folder: Path, say: Say) -> dict[str, Any]:
    started = time.monotonic()
    lake_db = _lake_dbname(settings)
    say(f"dumping the lake catalog ({lake_db}) in one snapshot with its file list ...")
    with pg.exported_snapshot(settings.lake_catalog) as (conn, snapshot):
        state = pg.lake_state(conn, settings.lake_path)
        pg.dump(settings.lake_catalog, folder / "db" / f"{lake_db}.dump", snapshot)
        # Still inside the snapshot: no file the dump references can have been expired yet.
        progress = Progress(say, "copying lake files", len(state.files))
        for lake_file in state.files:
            copy_file(lake_file.path, folder / "lake" / lake_file.relative)
            progress.step(lake_file.path.stat().st_size)
    _timed(say, f"lake snapshot {state.snapshot_id}: {len(state.files)} files", started)
    return {"database": lake_db, "snapshot_id": state.snapshot_id,
            "data_path": state.data_path, "files": len(state.files)}


def create_backup(settings: Settings, folder: Path | None, say: Say) -> dict[str, Any]:
    """Write a backup into ``folder`` (new or empty) and return its manifest."""
    folder = folder or default_folder(settings)
    if folder.exists() and any(folder.iterdir()):
        raise pg.BackupError(f"{folder} is not empty: choose a new folder")
    if folder.resolve().is_relative_to(settings.data_dir.resolve() / "pg"):
        raise pg.BackupError(f"{folder} is inside the database cluster")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)  # it holds the secrets and password hashes
    began, wall = time.monotonic(), datetime.now(UTC)
    say(f"backing up {settings.data_dir} into {folder}")

    (folder / "db").mkdir()
    # As the owner of every table (and reader of CDC's state schema): the app's role
    # could not read everything, a superuser is not needed.
    owner_url = settings.role_url(OWNER)
    pg.dump_roles(owner_url, folder / "db" / "roles.sql")
    lake = _lake(settings, folder, say)

    started = time.monotonic()
    say(f"dumping the application database ({settings.db_name}) ...")
    app_snapshot_at = time.time()
    pg.dump(owner_url, folder / "db" / f"{settings.db_name}.dump")
    _timed(say, f"{settings.db_name} dumped "
                f"({(folder / 'db' / f'{settings.db_name}.dump').stat().st_size / 1e6:.1f} MB)",
           started)

    # The local chain saves its state every 2 s when it changed: wait until everything
    # committed before the database dump began has been saved, then copy the snapshot.
    wait = app_snapshot_at + SOLANA_SAVE_INTERVAL_S + 1.0 - time.time()
    if wait > 0 and (settings.data_dir / "solana").exists():
        say(f"waiting {wait:.1f}s for the local chain's next save ...")
        time.sleep(wait)
    copied = {}
    for name, what in (("solana", "the local chain"), ("arweave", "the Arweave gateway"),
                       ("secrets", "the secrets")):
        started = time.monotonic()
        copied[name] = copy_tree(settings.data_dir / name, folder / name, say,
                                 f"copying {what}")
        _timed(say, f"{what}: {copied[name]} files", started)
    if (folder / "secrets").exists():
        (folder / "secrets").chmod(0o700)

    files = checksums(folder, say)
    manifest = {
        "format": FORMAT,
        "created_at": wall.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - began, 2),
        "source": {"data_dir": str(settings.data_dir), "database": settings.db_name,
                   "lake_path": str(settings.lake_path), "host": os.uname().nodename},
        "lake": lake,
        "copied": copied,
        "files": files,
        "total_bytes": sum(e["size"] for e in files.values()),
    }
    write_manifest(folder, manifest)
    say(f"backup complete: {len(files)} files, {manifest['total_bytes'] / 1e6:.1f} MB "
        f"in {manifest['duration_s']:.1f}s -> {folder}")
    return manifest


def remove_partial(folder: Path) -> None:
    """A failed backup leaves no folder that could be mistaken for one."""
    shutil.rmtree(folder, ignore_errors=True)
