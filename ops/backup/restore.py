"""``ece backup restore``: a backup into an empty data folder, ready for ``ece up``.

The databases go into a new cluster: a temporary PostgreSQL (the platform's own
part, on a free port) initialises ``<data>/pg`` and creates the database roles with the
restored secrets' passwords; as its socket-only superuser the backup's roles script
runs (attributes and memberships, no passwords), both databases are restored from
their dumps (owners and grants included), and the lake catalog's ``data_path`` pointed at
the restored lake folder; then it stops. Files are copied back with their modes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg

from ece.db_roles import ETL
from ece.settings import Settings
from ops.backup import pg
from ops.backup.manifest import Progress, Say, copy_file, read_manifest, verify, walk
from ops.stack.base import free_port
from ops.stack.postgres import Postgres


def _empty(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


def _copy_back(source: Path, target: Path, say: Say, what: str) -> int:
    files = list(walk(source))
    progress = Progress(say, what, len(files))
    for path in files:
        copy_file(path, target / path.relative_to(source))
        progress.step(path.stat().st_size)
    return len(files)


def _restore_databases(backup: Path, manifest: dict[str, Any], target: Settings,
                       say: Say) -> None:
    port = free_port()
    temporary = Settings(
        env=target.env, data_dir=target.data_dir,
        database_url=f"postgresql://{target.db_user}@127.0.0.1:{port}/{target.db_name}",
        lake_catalog=f"dbname={manifest['lake']['database']} host=127.0.0.1 port={port} "
                     f"user={ETL}",
        lake_data_path=target.lake_data_path,
    )
    postgres = Postgres(temporary)
    say(f"initialising a new cluster in {postgres.data_path} (temporary port {port}) ...")
    postgres.start()
    try:
        admin = postgres.superuser_conninfo("postgres")
        pg.restore_roles(admin, backup / "db" / "roles.sql")
        for dbname in (manifest["source"]["database"], manifest["lake"]["database"]):
            started = time.monotonic()
            say(f"restoring database {dbname} ...")
            pg.restore_database(admin, backup / "db" / f"{dbname}.dump", dbname)
            say(f"{dbname} restored in {time.monotonic() - started:.1f}s")
        lake_db = manifest["lake"]["database"]
        lake_admin = postgres.superuser_conninfo(lake_db)
        with psycopg.connect(lake_admin, autocommit=True) as conn:
            if conn.execute("SELECT to_regclass('ducklake_metadata')").fetchone() != (None,):
                conn.execute("UPDATE ducklake_metadata SET value = %s WHERE key = 'data_path'",
                             (str(target.lake_path) + "/",))
    finally:
        say("stopping the temporary PostgreSQL ...")
        postgres.stop()


def restore_backup(backup: Path, target: Settings, say: Say, *,
                   check: bool = True) -> dict[str, Any]:
    """Restore ``backup`` into ``target.data_dir``, which must be empty or absent."""
    manifest = read_manifest(backup)
    data_dir = target.data_dir
    if not _empty(data_dir):
        raise pg.BackupError(f"{data_dir} is not empty: restore only into an empty data folder "
                             "(move it away, or set ECE_DATA_DIR / --data-dir to a new one)")
    if not _empty(target.lake_path):
        raise pg.BackupError(f"the lake folder {target.lake_path} is not empty")
    if manifest["source"]["database"] != target.db_name:
        raise pg.BackupError(f"the backup holds database {manifest['source']['database']!r}, "
                             f"the target settings name {target.db_name!r}")
    if check:
        problems = verify(backup, say)
        if problems:
            raise pg.BackupError("the backup is damaged: " + "; ".join(problems[:10]))
    began = time.monotonic()
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o755)
    _copy_back(backup / "lake", target.lake_path, say, "restoring lake files")
    for name in ("solana", "arweave", "secrets"):
        _copy_back(backup / name, data_dir / name, say, f"restoring {name}")
    if (data_dir / "secrets").exists():
        (data_dir / "secrets").chmod(0o700)
    _restore_databases(backup, manifest, target, say)
    took = time.monotonic() - began
    say(f"restored {backup} into {data_dir} in {took:.1f}s (lake snapshot "
        f"{manifest['lake']['snapshot_id']}); `ece up` starts the platform on it")
    return {"duration_s": round(took, 2), "manifest": manifest}
