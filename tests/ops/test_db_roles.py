"""Least-privilege database roles on the real cluster (docs/operations.md "Database roles").

Each process logs in with the least it needs; what the contract says a role may not
do, PostgreSQL itself must refuse (``permission denied`` / ``must be owner``), not a
trigger: these tests use statements no trigger would stop (``WHERE false``, DDL).
"""

from __future__ import annotations

import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import errors
from typer.testing import CliRunner

from ece.db_roles import ANALYST, APP, CDC, DB_ROLES, ETL, OWNER
from ece.settings import Settings
from ops.cli.warehouse import warehouse_app
from ops.stack.supervisor import Platform
from warehouse import lake


@pytest.fixture(scope="module")
def db(platform: Platform) -> Settings:
    platform.require("postgres", "migrate")
    return platform.settings


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, connect_timeout=10)


def refused(conn: psycopg.Connection, statement: str) -> str:
    """The error PostgreSQL answers ``statement`` with (it must be a privilege error)."""
    with pytest.raises(errors.InsufficientPrivilege) as caught:
        conn.execute(statement)
    return str(caught.value)


# --- addresses (no cluster needed) ---------------------------------------------------


def test_role_addresses_derive_from_the_app_address() -> None:
    settings = Settings(database_url="postgresql://ece_app@127.0.0.1:6543/ece",
                        lake_catalog="dbname=ece_lake host=127.0.0.1 port=6543 user=ece_etl",
                        db_passfile_dir=Path("/x"))
    assert settings.database_url == (
        "postgresql://ece_app@127.0.0.1:6543/ece?passfile=/x/pgpass_ece_app")
    assert settings.role_url(OWNER) == (
        "postgresql://ece_owner@127.0.0.1:6543/ece?passfile=/x/pgpass_ece_owner")
    assert settings.lake_catalog.endswith("user=ece_etl passfile=/x/pgpass_ece_etl")
    assert settings.analyst_lake_catalog == (
        "dbname=ece_lake host=127.0.0.1 port=6543 user=ece_analyst passfile=/x/pgpass_ece_analyst")
    assert "database_url" in settings.model_fields_set  # given, so still "external"
    assert "lake_analyst_catalog" not in settings.model_fields_set


def test_external_and_explicit_addresses_stay_as_given() -> None:
    settings = Settings(database_url="postgresql://app:s3cret@db.example:5432/ece",
                        database_cdc_url="postgresql://dbz:other@db.example:5432/ece")
    assert settings.database_url == "postgresql://app:s3cret@db.example:5432/ece"
    assert settings.role_url(CDC) == "postgresql://dbz:other@db.example:5432/ece"
    # Derived for another host: the role's name, never the app's password.
    assert settings.role_url(OWNER) == "postgresql://ece_owner@db.example:5432/ece"


# --- the cluster ---------------------------------------------------------------------


def test_password_files_are_private_and_no_tcp_trust(db: Settings) -> None:
    for role in DB_ROLES:
        mode = stat.S_IMODE((db.secrets_dir / f"pg_{role}").stat().st_mode)
        assert mode == 0o600, (role, oct(mode))
        assert stat.S_IMODE(db.passfile(role).stat().st_mode) == 0o600
        # A role's file holds that role's password only (an analyst gets just theirs).
        assert {line.split(":")[3] for line in db.passfile(role).read_text().splitlines()
                } == {role}
    hba = (db.data_dir / "pg" / "pg_hba.conf").read_text()
    host_lines = [line.split() for line in hba.splitlines() if line.startswith("host")]
    assert host_lines and all(line[-1] == "scram-sha-256" for line in host_lines), hba
    for role in DB_ROLES:  # every address a process prints carries no password
        assert db.role_password(role) not in db.role_url(role)
        assert db.role_password(role) not in db.analyst_lake_catalog + db.lake_catalog


def test_tcp_login_without_the_password_is_refused(db: Settings) -> None:
    common = {"host": "127.0.0.1", "port": db.db_port, "dbname": db.db_name,
              "connect_timeout": 10}
    for user in (APP, OWNER, "postgres"):
        with pytest.raises(psycopg.OperationalError, match="no password supplied"):
            psycopg.connect(user=user, passfile="/dev/null", **common)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(user=user, password="not-the-password", **common)


def test_no_role_is_a_superuser_and_the_owner_owns_every_table(db: Settings) -> None:
    with connect(db.role_url(APP)) as conn:
        rows = conn.execute("SELECT rolname, rolsuper, rolreplication, rolbypassrls "
                            "FROM pg_roles WHERE rolname = ANY(%s)", (list(DB_ROLES),))
        attributes = {name: (sup, rep, bypass) for name, sup, rep, bypass in rows}
        assert set(attributes) == set(DB_ROLES)
        assert {name for name, (sup, _, bypass) in attributes.items() if sup or bypass} == set()
        assert {name for name, (_, rep, _) in attributes.items() if rep} == {CDC}
        others = conn.execute("SELECT tablename, tableowner FROM pg_tables "
                              "WHERE schemaname = 'public' AND tableowner <> %s",
                              (OWNER,)).fetchall()
        assert others == []


def test_app_cannot_run_ddl_or_disable_triggers(db: Settings) -> None:
    with connect(db.role_url(APP)) as conn:
        refused(conn, "CREATE TABLE role_probe (id int)")
        for table in ("audit_events", "ledger_entries"):
            message = refused(conn, f"ALTER TABLE {table} DISABLE TRIGGER ALL")
            assert "must be owner" in message
            refused(conn, f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only")
        refused(conn, "DROP TABLE audit_events")


def test_app_cannot_update_or_delete_audit_events_or_ledger_entries(db: Settings) -> None:
    with connect(db.role_url(APP)) as conn:
        row = conn.execute(
            "INSERT INTO audit_events (action, entity, entity_id, at) "
            "VALUES ('test.role_probe', 'test', %s, now()) RETURNING id",
            (uuid.uuid4().hex[:16],)).fetchone()
        assert row is not None
        event = row[0]
        refused(conn, f"UPDATE audit_events SET action = 'forged' WHERE id = {event}")
        refused(conn, f"DELETE FROM audit_events WHERE id = {event}")
        refused(conn, "TRUNCATE audit_events")
        refused(conn, "UPDATE ledger_entries SET amount_cents = amount_cents WHERE false")
        refused(conn, "DELETE FROM ledger_entries WHERE false")
        refused(conn, "TRUNCATE ledger_entries")
        assert conn.execute("SELECT action FROM audit_events WHERE id = %s",
                            (event,)).fetchone() == ("test.role_probe",)
        # What the app does update keeps working: the sealer's head row, other rows.
        conn.execute("UPDATE audit_chain_head SET seq = seq WHERE false")
        conn.execute("UPDATE users SET email = email WHERE false")


def test_cdc_reads_captured_tables_and_writes_nothing(db: Settings) -> None:
    with connect(db.role_url(CDC)) as conn:
        captured = [t for (t,) in conn.execute(
            "SELECT tablename FROM pg_publication_tables WHERE pubname = 'ece_cdc'")]
        assert "users" in captured and "audit_events" in captured
        for table in captured:
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        refused(conn, "INSERT INTO users SELECT * FROM users WHERE false")
        refused(conn, "UPDATE users SET email = email WHERE false")
        refused(conn, "SELECT count(*) FROM audit_seals")  # not captured
        refused(conn, "CREATE TABLE public.role_probe (id int)")


def test_etl_reads_captured_tables_and_writes_only_the_lake(db: Settings) -> None:
    with connect(db.role_url(ETL)) as conn:
        conn.execute("SELECT count(*) FROM ledger_entries").fetchone()
        refused(conn, "INSERT INTO users SELECT * FROM users WHERE false")
        refused(conn, "SELECT count(*) FROM refresh_sessions")  # not captured
    with connect(db.lake_catalog) as conn:
        conn.execute("CREATE TABLE etl_probe (id int)")
        conn.execute("DROP TABLE etl_probe")


@pytest.fixture
def probe(db: Settings) -> Iterator[str]:
    """A table the lake writer made in the catalog database (dropped afterwards)."""
    table = f"role_probe_{uuid.uuid4().hex[:8]}"
    with connect(db.lake_catalog) as conn:
        conn.execute(f"CREATE TABLE {table} (id int)")
        conn.execute(f"INSERT INTO {table} VALUES (42)")
    yield table
    with connect(db.lake_catalog) as conn:
        conn.execute(f"DROP TABLE {table}")


def test_analyst_reads_the_lake_catalog_only(db: Settings, probe: str) -> None:
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        connect(db.role_url(ANALYST))  # the app database: not even a connection
    with connect(db.analyst_lake_catalog) as conn:
        assert conn.execute(f"SELECT id FROM {probe}").fetchone() == (42,)
        refused(conn, f"INSERT INTO {probe} VALUES (1)")
        refused(conn, "CREATE TABLE analyst_probe (id int)")


def test_warehouse_sql_and_attach_run_as_the_analyst(db: Settings) -> None:
    lake.connect(db).close()  # the writer (ece_etl) initialises the catalog
    result = CliRunner().invoke(warehouse_app, ["attach"])
    assert result.exit_code == 0, result.output
    assert "user=ece_analyst" in result.output and "READ_ONLY" in result.output
    assert db.role_password(ANALYST) not in result.output
    result = CliRunner().invoke(
        warehouse_app, ["sql", "SELECT count(*) > 0 AS ok FROM ducklake_snapshots('ece')"])
    assert result.exit_code == 0, result.output
    assert "True" in result.output
