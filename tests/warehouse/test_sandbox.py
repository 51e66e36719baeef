"""The analysts' sandbox (``ece warehouse sql``/``shell``/``attach``) against the real lake.

Each probe from the security review is run through the real command and must be
refused with a clear error, leaving nothing behind; the lake's own queries keep
working.
"""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from ece.settings import REPO_ROOT, Settings
from ops.cli.warehouse import warehouse_app
from warehouse import lake, sandbox

ROWS = 5000  # beyond DuckLake's inlining: the rows live in Parquet files under the data path


@pytest.fixture
def filled(lake_settings: Settings) -> Settings:
    con = lake.connect(lake_settings)
    try:
        con.execute("CREATE TABLE ece.silver.sample AS "
                    f"SELECT range AS id, 'card ' || range AS name FROM range({ROWS})")
    finally:
        con.close()
    secret = lake_settings.data_dir / "secrets" / "custody_kek"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("the-custody-kek")
    return lake_settings


def sql(query: str) -> tuple[int, str]:
    result = CliRunner().invoke(warehouse_app, ["sql", query])
    return result.exit_code, result.output


def test_lake_queries_still_run(filled: Settings) -> None:
    for query, expected in [
        ("SELECT count(*) AS n FROM silver.sample", str(ROWS)),
        ("SELECT name FROM ece.silver.sample WHERE id = 7", "card 7"),
        ("DESCRIBE silver.sample", "VARCHAR"),
        ("SELECT count(*) > 0 AS ok FROM ducklake_snapshots('ece')", "True"),
        (f"SELECT count(*) AS n FROM read_parquet('{filled.lake_path}/silver/**/*.parquet')",
         str(ROWS)),
        ("WITH a AS (SELECT 1 AS x) SELECT x + 41 AS y FROM a; SELECT 42 AS z", "42"),
    ]:
        code, output = sql(query)
        assert code == 0, output
        assert expected in output, (query, output)


def _probes(settings: Settings) -> dict[str, str]:
    data, lake_dir = settings.data_dir, settings.lake_path
    app_db = (f"dbname={settings.db_name} host={settings.db_host} port={settings.db_port} "
              f"user={settings.db_user}")
    ext = lake.extension_path(*lake.EXTENSIONS[0])
    return {
        "read_text outside the lake": f"SELECT * FROM read_text('{data}/secrets/custody_kek')",
        "read_csv with ../": f"SELECT * FROM read_csv('{lake_dir}/../secrets/custody_kek')",
        "glob outside the lake": f"SELECT * FROM glob('{data}/secrets/*')",
        "SET external access": "SET enable_external_access = true",
        "SET allowed_directories": "SET allowed_directories = ['/']",
        "INSERT into the lake": "INSERT INTO ece.silver.sample VALUES (-1, 'forged')",
        "DROP a lake table": "DROP TABLE ece.silver.sample",
        "ATTACH a file in the lake": f"ATTACH '{lake_dir}/evil.duckdb' AS evil",
        "ATTACH the catalog read-write": (
            f"ATTACH 'ducklake:postgres:{settings.lake_catalog}' AS rw "
            f"(DATA_PATH '{lake_dir}/')"),
        "COPY TO the lake": f"COPY (SELECT 1) TO '{lake_dir}/evil.csv'",
        "COPY TO outside": f"COPY (SELECT 1) TO '{data}/evil.csv'",
        "INSTALL": "INSTALL httpfs",
        "LOAD": f"LOAD '{ext}'",
        "CALL": "CALL postgres_execute('__ducklake_metadata_ece', 'SELECT 1')",
        "PRAGMA": "PRAGMA enable_profiling",
        "multi-statement hiding COPY": f"SELECT 1; COPY (SELECT 1) TO '{lake_dir}/evil.csv'",
        "multi-statement hiding ATTACH": f"SELECT 1;\nATTACH '{lake_dir}/evil.duckdb' AS e",
        "multi-statement hiding SET": "SELECT 1; SET lock_configuration = false; SELECT 2",
        "postgres_scan of the app database": (
            f"SELECT * FROM postgres_scan('{app_db}', 'public', 'pg_stat_activity')"),
        "postgres_scan, qualified and nested": (
            f"SELECT (SELECT count(*) FROM system.main.POSTGRES_SCAN('{app_db}', 'pg_catalog', "
            "'pg_authid')) AS n"),
        "postgres_query on the catalog server": (
            "SELECT * FROM postgres_query('__ducklake_metadata_ece', 'SELECT current_user')"),
        "query() of a string": "SELECT * FROM query('SELECT 1')",
        "the catalog database's pg_authid": (
            "SELECT rolname FROM __ducklake_metadata_ece.pg_catalog.pg_authid"),
        "DuckLake maintenance": (
            "SELECT * FROM ducklake_cleanup_old_files('ece', cleanup_all => true)"),
        "getenv": "SELECT getenv('ECE_CUSTODY_KEK')",
    }


def test_every_probe_is_refused_and_leaves_nothing_behind(filled: Settings) -> None:
    failures = []
    for name, query in _probes(filled).items():
        code, output = sql(query)
        if code != 1 or "error" not in output or "the-custody-kek" in output:
            failures.append(f"{name}: exit {code}: {output.strip()[:200]}")
    assert not failures, "\n".join(failures)
    assert not list(filled.lake_path.glob("evil*")) and not (filled.data_dir / "evil.csv").exists()
    code, output = sql("SELECT count(*) AS n FROM silver.sample")
    assert code == 0 and str(ROWS) in output  # the lake is untouched


def test_refusals_say_why(filled: Settings) -> None:
    assert "only queries run here" in sql(f"COPY (SELECT 1) TO '{filled.lake_path}/x.csv'")[1]
    assert "postgres_scan() is not available" in sql(
        "SELECT * FROM postgres_scan('dbname=ece', 'public', 'users')")[1]
    assert "disabled by configuration" in sql("SELECT * FROM read_text('/etc/hostname')")[1]


def test_the_sandboxed_connection_is_confined(filled: Settings) -> None:
    con = sandbox.connect(filled)
    try:
        settings = dict(con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('enable_external_access', 'lock_configuration', 'allowed_directories')"
        ).fetchall())
        readonly = con.execute(
            "SELECT readonly FROM duckdb_databases() WHERE database_name = 'ece'").fetchone()
    finally:
        con.close()
    assert settings["enable_external_access"] == "false"
    assert settings["lock_configuration"] == "true"
    assert f"{filled.lake_path}/" in settings["allowed_directories"]
    assert readonly == (True,)


def test_dagster_connections_stay_writable(filled: Settings) -> None:
    con = lake.connect(filled)
    try:
        con.execute("INSERT INTO ece.silver.sample VALUES (-1, 'written by the pipeline')")
        assert con.execute("SELECT count(*) FROM ece.silver.sample").fetchone() == (ROWS + 1,)
    finally:
        con.close()


def test_the_shell_runs_the_same_confinement(filled: Settings) -> None:
    init = sandbox.write_shell_init(filled, read_only=True)
    assert stat.S_IMODE(init.stat().st_mode) == 0o600
    lines = init.read_text().splitlines()
    order = [next(i for i, line in enumerate(lines) if line.startswith(prefix))
             for prefix in ("ATTACH", "SET allowed_directories", "SET enable_external_access",
                            ".safe_mode")]
    assert order == sorted(order)
    assert "READ_ONLY" in lines[order[0]]

    probes = "\n".join([
        "SELECT 'rows=' || count(*) FROM ece.silver.sample;",
        "SELECT 'lock=' || current_setting('lock_configuration') || ' ext=' || "
        "current_setting('enable_external_access');",
        f"SELECT * FROM read_text('{filled.data_dir}/secrets/custody_kek');",
        "SET enable_external_access = true;",
        "INSERT INTO ece.silver.sample VALUES (-1, 'forged');",
        "INSTALL httpfs;",
        ".shell echo SHELL-RAN",
        ".open /tmp/escaped.duckdb",
        f".read {filled.data_dir}/secrets/custody_kek",
        "SELECT 'end';",
    ]) + "\n"
    shell = subprocess.run(
        [sys.executable, "-c", "from ops.cli.warehouse import warehouse_app; warehouse_app()",
         "shell"], input=probes, capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    out = shell.stdout + shell.stderr
    assert f"rows={ROWS}" in shell.stdout, out
    assert "lock=true ext=false" in shell.stdout, out
    assert "the-custody-kek" not in out and "SHELL-RAN" not in out
    assert "configuration has been locked" in out and "read-only mode" in out
    assert "cannot be used in -safe mode" in out
    assert "Failed to execute" not in out  # the init file itself ran cleanly
    assert not Path("/tmp/escaped.duckdb").exists()


def test_attach_prints_the_analysts_read_only_statement(filled: Settings) -> None:
    result = CliRunner().invoke(warehouse_app, ["attach"])
    assert result.exit_code == 0, result.output
    statement = result.output.strip()
    assert statement.startswith("ATTACH 'ducklake:postgres:") and "(DATA_PATH" in statement
    assert "READ_ONLY" in statement and sandbox.analyst_catalog(filled) in statement
    assert "user=ece_analyst" in statement
    con = duckdb.connect(":memory:")  # what an analyst does in their own DuckDB
    try:
        for package, name in lake.EXTENSIONS:
            con.execute(f"LOAD '{lake.extension_path(package, name)}'")
        con.execute(statement)
        assert con.execute("SELECT count(*) FROM ece.silver.sample").fetchone() == (ROWS,)
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("DELETE FROM ece.silver.sample")
    finally:
        con.close()
