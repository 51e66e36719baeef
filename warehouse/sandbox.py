"""The analysts' sandbox: ``ece warehouse sql`` and ``shell`` read the lake, nothing else.

A sandboxed connection is a lake client (:func:`warehouse.lake.setup_statements`,
always ``READ_ONLY``) followed by :func:`confine_statements`, in this order:

1. ``SET allowed_directories = ['<lake data path>/']``: the only files it may touch;
2. ``SET enable_external_access = false``: no other file, no ``INSTALL``/``LOAD``,
   no new Postgres ``ATTACH``, no ``getenv``;
3. ``SET lock_configuration = true``: no ``SET`` can undo 1 and 2.

The catalog is attached before step 2, so lake queries keep working. What the
settings let through, :func:`check` refuses before anything runs (``sql``):

- every statement that is not a plain query (``extract_statements`` gives the type
  of each statement of a multi-statement string): ``ATTACH``, ``COPY``, ``INSTALL``,
  ``LOAD``, ``INSERT``, ``SET``, ``CALL``, ``PRAGMA`` with side effects, ...;
- table functions outside :data:`TABLE_FUNCTIONS` (the parsed query names every
  function it calls): ``postgres_scan``/``postgres_query``/``postgres_execute``
  (which reach any database the catalog's server lets them), ``query`` (SQL built
  from a string, unchecked), the DuckLake maintenance functions, ...;
- any name in the DuckLake metadata catalog (``__ducklake_metadata_ece``), a Postgres
  connection whose ``pg_catalog`` shows every role of the server; ``current_state``
  (the pipeline's macro, which reads a table named by a string) is refused too.

The DuckDB shell cannot run :func:`check`: it runs the same three settings (the
third through ``.safe_mode``, which also disables ``.shell``, ``.open``, ``.read``,
``.output`` and ``.import``). What stays open there, and everywhere for a
``postgres_scan``, the ``ece_analyst`` role closes: it can connect to the lake
catalog database only, read-only (docs/lake.md, "Sandbox").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from ece.private_files import write_private
from ece.settings import Settings
from warehouse.lake import ALIAS, attach_statement, quote_literal, setup_statements

# Plain queries only: SELECT, FROM ..., WITH ..., VALUES, DESCRIBE, SHOW, SUMMARIZE.
STATEMENTS = frozenset({duckdb.StatementType.SELECT})
# The table functions an analyst may call; every other one is refused by name. File
# readers are listed because the settings confine them to the lake's data path.
TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "repeat", "repeat_row", "summary",
    "histogram", "histogram_values", "json_each", "json_tree",
    "read_parquet", "parquet_scan", "parquet_metadata", "parquet_schema",
    "parquet_file_metadata", "parquet_kv_metadata", "parquet_full_metadata",
    "read_csv", "read_csv_auto", "read_json", "read_json_auto", "read_ndjson",
    "read_ndjson_auto", "read_json_objects", "read_json_objects_auto", "read_text",
    "read_blob", "glob", "sniff_csv",
    "ducklake_snapshots", "ducklake_table_info", "ducklake_list_files",
    "ducklake_current_snapshot", "ducklake_last_committed_snapshot",
    "ducklake_table_changes", "ducklake_table_insertions", "ducklake_table_deletions",
    "ducklake_options", "ducklake_settings",
    "duckdb_columns", "duckdb_tables", "duckdb_views", "duckdb_schemas", "duckdb_databases",
    "duckdb_functions", "duckdb_types", "duckdb_keywords", "duckdb_constraints",
    "duckdb_indexes", "duckdb_sequences", "duckdb_dependencies", "duckdb_settings",
    "duckdb_extensions", "duckdb_memory",
    "pragma_version", "pragma_table_info", "pragma_show", "pragma_platform",
    "pragma_database_size", "pragma_storage_info", "pragma_collations",
    "icu_calendar_names", "pg_timezone_names",
})
METADATA_CATALOG = "__ducklake_metadata_"  # DuckLake attaches the catalog database so


class SandboxRefused(Exception):
    """A statement the sandbox does not run (the message says which and why)."""


def analyst_catalog(settings: Settings) -> str:
    """The libpq string analysts attach the lake with (the sandbox uses the same).

    It logs in as ``ece_analyst``, which may read the lake catalog database and nothing
    else (docs/operations.md "Database roles"): whatever a query slips past
    :func:`check` (or the shell's ``postgres_scan``) meets PostgreSQL's own refusal.
    """
    return settings.analyst_lake_catalog


def _analyst_settings(settings: Settings) -> Settings:
    catalog = analyst_catalog(settings)
    if catalog == settings.lake_catalog:
        return settings
    return settings.model_copy(update={"lake_catalog": catalog})


def analyst_attach_statement(settings: Settings) -> str:
    """The one ``ATTACH`` an analyst runs in their own DuckDB (``ece warehouse attach``)."""
    return attach_statement(_analyst_settings(settings), read_only=True)


def confine_statements(settings: Settings) -> list[str]:
    """The three settings that confine a lake client, in the order they must run."""
    return [
        f"SET allowed_directories = [{quote_literal(str(settings.lake_path).rstrip('/') + '/')}]",
        "SET enable_external_access = false",
        "SET lock_configuration = true",
    ]


def sandbox_statements(settings: Settings, read_only: bool = True) -> list[str]:
    """Lake client setup, then confinement (both connections and the shell use it)."""
    return [*setup_statements(_analyst_settings(settings), read_only),
            *confine_statements(settings)]


def connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    """A read-only, confined lake connection with ``ece`` as the default catalog."""
    con = duckdb.connect(":memory:")
    try:
        for statement in sandbox_statements(settings, read_only=True):
            con.execute(statement)
        con.execute(f"USE {ALIAS}")  # `silver.cards` works as well as `ece.silver.cards`
    except Exception:
        con.close()
        raise
    return con


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _table_functions(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("SELECT DISTINCT lower(function_name) FROM duckdb_functions() "
                       "WHERE function_type IN ('table', 'table_macro')").fetchall()
    return {str(r[0]) for r in rows}


def _check_query(con: duckdb.DuckDBPyConnection, query: str, table_functions: set[str]) -> None:
    row = con.execute("SELECT json_serialize_sql(?)", [query]).fetchone()
    tree = json.loads(row[0]) if row else {"error": True}
    if tree.get("error"):
        raise SandboxRefused(f"cannot check this query: {tree.get('error_message', 'unknown')}")
    for node in _walk(tree):
        name = node.get("function_name")
        if isinstance(name, str):
            lowered = name.lower()
            if lowered in table_functions and lowered not in TABLE_FUNCTIONS:
                raise SandboxRefused(
                    f"the table function {name}() is not available in the sandbox: analysts "
                    "read the lake's tables (and the lake's own files) only")
        for value in _strings(node):
            if value.lower().startswith(METADATA_CATALOG):
                raise SandboxRefused(
                    f"{value} is the lake's catalog database, not part of the lake: query "
                    f"{ALIAS}.<schema>.<table> or the ducklake_*() functions instead")


def _strings(node: dict[str, Any]) -> Iterator[str]:
    """The identifiers (and literals) directly in ``node``: a name in any position."""
    for value in node.values():
        if isinstance(value, str):
            yield value
        elif isinstance(value, list):
            yield from (v for v in value if isinstance(v, str))


def check(con: duckdb.DuckDBPyConnection, sql: str) -> list[str]:
    """Each statement of ``sql`` when every one of them is allowed; else SandboxRefused."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise SandboxRefused(str(exc)) from None
    if not statements:
        raise SandboxRefused("no statement to run")
    table_functions = _table_functions(con)
    for statement in statements:
        if statement.type not in STATEMENTS:
            kind = str(statement.type).rsplit(".", 1)[-1]
            raise SandboxRefused(
                f"only queries run here; refused this {kind} statement: "
                f"{statement.query.strip()[:80]!r} (the lake is read-only, and no file, "
                "database or extension outside it is reachable)")
        _check_query(con, statement.query, table_functions)
    return [statement.query for statement in statements]


def run(con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyConnection:
    """Check every statement of ``sql``, then run them in order; the last one's cursor."""
    queries = check(con, sql)
    for query in queries[:-1]:
        con.execute(query).fetchall()
    return con.execute(queries[-1])


def write_shell_init(settings: Settings, read_only: bool = True) -> Path:
    """The DuckDB shell's ``-init`` file (0600: it names the catalog's credentials).

    The same statements as :func:`connect`, then ``.safe_mode``. The shell's safe mode
    runs ``SET enable_external_access = false`` and ``SET lock_configuration = true``
    itself (and fails noisily when the configuration is already locked), so the third
    confining statement is left to it: the settings end up identical, in the same order.
    """
    statements = sandbox_statements(settings, read_only)
    assert statements[-1] == "SET lock_configuration = true"
    lines = [f"{s};" for s in statements[:-1]] + [f"USE {ALIAS};", ".safe_mode"]
    path = settings.data_dir / "warehouse" / f"shell_init{'_ro' if read_only else ''}.sql"
    write_private(path, "\n".join(lines) + "\n", replace=True)
    return path
