"""PostgreSQL for backups: dumps in one snapshot, the lake's file list, restores.

Debian's PostgreSQL 15 client tools (``/usr/lib/postgresql/15/bin``), matching the
server the platform runs; custom-format dumps (``pg_restore`` can restore them
selectively and in parallel).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import psycopg

from ops.stack.postgres import PG_BIN


class BackupError(RuntimeError):
    """A backup or restore step failed: says which and why."""


def _tool(name: str) -> str:
    path = PG_BIN / name
    if not path.exists():
        raise BackupError(f"{path} not found: apt-get install -y postgresql-client-15")
    return str(path)


def run_tool(name: str, *args: str, timeout: float = 3600) -> str:
    done = subprocess.run([_tool(name), *args], capture_output=True, text=True,
                          timeout=timeout, check=False,
                          env={**os.environ, "PGCONNECT_TIMEOUT": "10"})
    if done.returncode != 0:
        raise BackupError(f"{name} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stderr


def dump(conninfo: str, target: Path, snapshot: str | None = None) -> None:
    """``pg_dump -Fc`` of one database (in an exported snapshot when given)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    args = ["--format=custom", "--no-password", f"--file={target}", f"--dbname={conninfo}"]
    if snapshot:
        args.append(f"--snapshot={snapshot}")
    run_tool("pg_dump", *args)


def dump_roles(conninfo: str, target: Path) -> None:
    """The cluster's roles and memberships: owners and grants need them.

    Without password hashes (only a superuser may read them, and backups run as
    ``ece_owner``): the roles' passwords are the generated secrets the backup holds,
    which the cluster bootstrap applies again on every start.
    """
    run_tool("pg_dumpall", "--roles-only", "--no-role-passwords", "--no-password",
             f"--dbname={conninfo}", f"--file={target}")


@dataclass(frozen=True)
class LakeFile:
    path: Path  # where it is now
    relative: str  # where it goes, relative to the lake folder


@dataclass(frozen=True)
class LakeState:
    snapshot_id: int | None
    data_path: str | None
    files: list[LakeFile]


FILES_SQL = """
WITH tables AS (
    SELECT DISTINCT ON (table_id) table_id, schema_id, path, path_is_relative
    FROM ducklake_table ORDER BY table_id, begin_snapshot DESC),
schemas AS (
    SELECT DISTINCT ON (schema_id) schema_id, path, path_is_relative
    FROM ducklake_schema ORDER BY schema_id, begin_snapshot DESC),
files AS (
    SELECT table_id, path, path_is_relative FROM ducklake_data_file
    UNION SELECT table_id, path, path_is_relative FROM ducklake_delete_file)
SELECT f.path, f.path_is_relative, t.path, t.path_is_relative, s.path, s.path_is_relative
FROM files f LEFT JOIN tables t USING (table_id) LEFT JOIN schemas s USING (schema_id)
"""


def _join(*parts: tuple[str | None, bool | None]) -> str:
    """DuckLake paths: each level relative to the one above unless marked absolute."""
    result = ""
    for path, relative in parts:
        if not path:
            continue
        result = result + path if relative else path
    return result


def lake_state(conn: psycopg.Connection, lake_root: Path) -> LakeState:
    """The catalog's newest snapshot and every file any retained snapshot references."""
    if conn.execute("SELECT to_regclass('ducklake_data_file')").fetchone() == (None,):
        return LakeState(None, None, [])
    row = conn.execute("SELECT value FROM ducklake_metadata WHERE key = 'data_path'").fetchone()
    data_path = str(row[0]) if row else str(lake_root) + "/"
    snapshot = conn.execute("SELECT max(snapshot_id) FROM ducklake_snapshot").fetchone()
    by_name: dict[str, Path] | None = None
    files = []
    for fpath, frel, tpath, trel, spath, srel in conn.execute(FILES_SQL).fetchall():
        relative = _join((spath, srel), (tpath, trel), (fpath, frel)) if frel else None
        candidate = lake_root / relative if relative else Path(fpath)
        if not candidate.is_file():
            # The catalog's data_path may name another folder (a restored copy): the file
            # names are unique, so find it under this lake by name.
            if by_name is None:
                by_name = {p.name: p for p in lake_root.rglob("*") if p.is_file()}
            found = by_name.get(PurePosixPath(fpath).name)
            if found is None:
                raise BackupError(f"the lake catalog references {fpath}, which is not under "
                                  f"{lake_root}: was a snapshot expired during the backup?")
            candidate = found
        try:
            rel = candidate.resolve().relative_to(lake_root.resolve()).as_posix()
        except ValueError as exc:
            raise BackupError(f"lake file {candidate} lies outside {lake_root}") from exc
        files.append(LakeFile(candidate, rel))
    return LakeState(int(snapshot[0]) if snapshot and snapshot[0] is not None else None,
                     data_path, sorted(set(files), key=lambda f: f.relative))


@contextmanager
def exported_snapshot(conninfo: str) -> Iterator[tuple[psycopg.Connection, str]]:
    """A read-only repeatable-read transaction and its exported snapshot id, held open."""
    with psycopg.connect(conninfo, connect_timeout=10) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            row = conn.execute("SELECT pg_export_snapshot()").fetchone()
            assert row is not None
            yield conn, str(row[0])


def restore_roles(conninfo: str, roles_sql: Path) -> list[str]:
    """Run the roles script; a role that exists already is not an error. Returns warnings."""
    done = subprocess.run([_tool("psql"), "-X", "-q", "--no-password", f"--dbname={conninfo}",
                           "-f", str(roles_sql)], capture_output=True, text=True, timeout=300,
                          check=False)
    errors = [line for line in done.stderr.splitlines()
              if "ERROR" in line and "already exists" not in line]
    if done.returncode != 0 or errors:
        raise BackupError(f"restoring roles failed: {' / '.join(errors) or done.stderr[-2000:]}")
    return [line for line in done.stderr.splitlines() if line.strip()]


def restore_database(admin_conninfo: str, dump_file: Path, dbname: str) -> None:
    """Drop ``dbname`` (empty, made by the bootstrap) and recreate it from the dump."""
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
    run_tool("pg_restore", "--create", "--exit-on-error", "--no-password",
             f"--dbname={admin_conninfo}", str(dump_file))
