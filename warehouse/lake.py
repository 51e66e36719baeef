"""Open the lakehouse: a DuckDB connection with the DuckLake attached as ``ece``.

``INSTALL`` cannot download extensions on these machines, so the signed extension
binaries come from the ``duckdb-extension-*`` wheels and are loaded by file path.
``postgres_scanner`` must be loaded before ``ducklake`` because the DuckLake
catalog lives in PostgreSQL. Every reader and writer (Dagster assets, the
``ece warehouse`` commands, the DuckDB shell, tests) goes through this module so
that they all see the same catalog and data path. The analysts' entry points
(``ece warehouse sql``/``shell``) add the confinement of :mod:`warehouse.sandbox`;
:func:`connect` stays unconfined for Dagster and the landing, which write.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import duckdb
import psycopg

from ece.retry import retry_call
from ece.settings import Settings

T = TypeVar("T")
ALIAS = "ece"
# Schemas the warehouse owns in the lake (docs/lake.md).
SCHEMAS: tuple[str, ...] = ("bronze", "silver", "gold", "quality")
# Extensions in load order: the catalog's driver first.
EXTENSIONS: tuple[tuple[str, str], ...] = (
    ("duckdb_extension_postgres_scanner", "postgres_scanner"),
    ("duckdb_extension_ducklake", "ducklake"),
)
# The table macros the layer SQL calls (``current_state``): created in the in-memory
# catalog of each connection, so every cursor of it sees them.
MACROS = Path(__file__).resolve().parent / "macros.sql"


def extension_path(package: str, name: str) -> Path:
    """The ``.duckdb_extension`` file shipped in ``package`` for this DuckDB version.

    The wheels pin one DuckDB release each; a mismatch would fail at ``LOAD`` with
    an obscure message, so we fail here with the fix instead.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{package} is not installed: uv sync --locked")
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.exists():
        raise RuntimeError(f"{path} missing: {package} must match duckdb {duckdb.__version__}")
    return path


def quote_literal(value: str) -> str:
    """``value`` as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def attach_statement(settings: Settings, read_only: bool = False) -> str:
    """The one ``ATTACH`` an analyst (or the shell init file) runs."""
    options = [f"DATA_PATH {quote_literal(str(settings.lake_path) + '/')}"]
    if read_only:
        options.append("READ_ONLY")
    # A local role's catalog string reads its password from the libpq password file.
    catalog = settings.with_passfile(settings.lake_catalog)
    return (f"ATTACH {quote_literal('ducklake:postgres:' + catalog)} AS {ALIAS} "
            f"({', '.join(options)})")


def setup_statements(settings: Settings, read_only: bool = False) -> list[str]:
    """Every statement that turns a bare DuckDB into a lake client, in order.

    Shared by :func:`connect` and the shell's init file so both stay identical.
    The macros come last: they are created in the in-memory catalog (never the
    lake's), before anything changes the default catalog with ``USE``.
    """
    loads = [f"LOAD {quote_literal(str(extension_path(pkg, name)))}" for pkg, name in EXTENSIONS]
    return [*loads, attach_statement(settings, read_only), macro_statement()]


def macro_statement() -> str:
    """``warehouse/macros.sql`` as one statement (without its final ``;``)."""
    return MACROS.read_text().strip().removesuffix(";")


def connect(settings: Settings, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB with the lake attached as ``ece``.

    Writers also make sure the layer schemas exist, so a fresh catalog works
    without a separate bootstrap step. Read-only connections never write the
    catalog (an analyst's session cannot block or alter anything).
    """
    if not read_only:
        settings.lake_path.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:")
    try:
        for statement in setup_statements(settings, read_only):
            con.execute(statement)
        if not read_only:
            for schema in SCHEMAS:
                retry_conflicts(partial(con.execute,
                                        f"CREATE SCHEMA IF NOT EXISTS {ALIAS}.{schema}"))
            grant_readers(settings)
    except Exception:
        con.close()
        raise
    return con


# The catalog's writer (``ece_etl``) owns DuckLake's tables: it lets ``ece_analyst`` read
# them, now and the ones a later DuckLake version adds (docs/operations.md "Database roles").
READER_GRANTS_LOCK = 7_310_002  # any constant (the migrations' lock is 7_310_001)
READER_GRANTS = """
DO $readers$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'ece_analyst')
            AND current_user <> 'ece_analyst' THEN
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO ece_analyst;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO ece_analyst;
    END IF;
END
$readers$
"""


def grant_readers(settings: Settings) -> None:
    """Let the analysts' role read the catalog this writer initialised (idempotent).

    Done by the writer itself because only a table's owner (or a superuser) may grant
    it, and catalogs are made by whoever attaches first (the bootstrap's database,
    a test's throwaway one). Tables owned by another role are skipped by PostgreSQL
    with a warning, not an error.
    """
    with psycopg.connect(settings.with_passfile(settings.lake_catalog),
                         connect_timeout=10) as conn, conn.transaction():
        # Concurrent GRANTs on one table fail ("tuple concurrently updated"): writers that
        # connect at the same moment take turns (the lock is per database, until commit).
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (READER_GRANTS_LOCK,))
        conn.execute(READER_GRANTS)


def is_conflict(exc: BaseException) -> bool:
    """A DuckLake commit that lost to a concurrent writer (safe to redo)."""
    return isinstance(exc, duckdb.TransactionException) and "conflict" in str(exc).lower()


def retry_conflicts(action: Callable[[], T], attempts: int = 8) -> T:
    """Run an idempotent statement again when a concurrent writer won the commit.

    DuckLake resolves concurrency optimistically: two ``CREATE ... IF NOT EXISTS``
    racing on a fresh catalog both pass the check and the second fails at commit.
    Redoing it then sees the object and does nothing. The platform's one retry
    policy (:mod:`ece.retry`), with short delays: the loser only waits for one commit.
    """
    return retry_call(
        action, what="lake write after a commit conflict", attempts=attempts,
        should_retry=lambda exc, _attempt: (
            isinstance(exc, duckdb.TransactionException) and is_conflict(exc)),
        base=0.02, cap=0.5, jitter=0.5)


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? "
        "AND table_name = ?", [ALIAS, schema, table]).fetchone()
    return bool(row and row[0])


def lake_tables(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    """Every (schema, table) of the lake, in one catalog listing.

    ``duckdb_tables()`` lists every attached catalog, the DuckLake's PostgreSQL
    metadata database included, so each call costs tens of milliseconds: a step
    that needs several tables asks once.
    """
    rows = con.execute("SELECT schema_name, table_name FROM duckdb_tables() "
                       "WHERE database_name = ?", [ALIAS]).fetchall()
    return {(str(r[0]), str(r[1])) for r in rows}


def table_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = ? AND schema_name = ? "
        "AND table_name = ? ORDER BY column_index", [ALIAS, schema, table]).fetchall()
    return [str(r[0]) for r in rows]
