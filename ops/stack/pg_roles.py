"""The local cluster's roles, databases and database-level grants (docs/operations.md).

Run by the PostgreSQL part on every start as the socket-only ``postgres`` superuser;
every statement is idempotent. What each role may do, and why:

* ``ece_owner`` owns both databases and (through the migrations it runs) every table
  of the app database. Only an owner may ``ALTER TABLE``, so only it can drop the
  append-only triggers of the audit log and the ledger; no process but migrations
  logs in as it.
* ``ece_app`` (API, workers) gets row privileges on the app's tables from the
  migrations (``api/migrations/grants.py``), never ownership: DDL and
  ``DISABLE TRIGGER`` are refused by PostgreSQL itself.
* ``ece_cdc`` (Debezium) has ``REPLICATION`` and, from the migrations, ``SELECT`` on
  the captured tables; ``CREATE`` on the app database only for its own state schema
  ``ece_cdc`` (offsets, epoch), which it owns. The owner may read that schema so that
  ``pg_dump`` as the owner backs it up.
* ``ece_etl`` (Dagster, ``ece warehouse refresh``) writes the lake catalog database
  (it creates and owns DuckLake's tables) and reads the captured tables.
* ``ece_analyst`` may connect to the lake catalog only and read it: every table
  ``ece_etl`` creates there is readable by it (default privileges).

``CONNECT`` to each database is revoked from ``PUBLIC``, so a role can only reach the
databases named above. Under ``ECE_ENV=test`` ``ece_app`` also gets ``CREATEDB``: the
test fixtures make a throwaway database per test with the app's address (it does not
let it touch the tables ``ece_owner`` owns).
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from psycopg import sql

from ece.db_roles import ANALYST, APP, CDC, ETL, OWNER

ATTRIBUTES = {
    OWNER: "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
    APP: "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
    CDC: "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE REPLICATION NOBYPASSRLS",
    ETL: "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
    ANALYST: "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
}
CDC_SCHEMA = "ece_cdc"  # streaming.cdc.config.STATE_SCHEMA
LEGACY_ROLE = "ece"  # the one superuser role every process used before the roles


def _q(name: str) -> sql.Identifier:
    return sql.Identifier(name)


def _roles(conn: psycopg.Connection, passwords: dict[str, str], test: bool) -> None:
    for role, password in passwords.items():
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            conn.execute(sql.SQL("CREATE ROLE {}").format(_q(role)))
        attributes = ATTRIBUTES[role]
        if test and role == APP:
            attributes = attributes.replace("NOCREATEDB", "CREATEDB")
        conn.execute(sql.SQL("ALTER ROLE {} WITH {} PASSWORD {}").format(
            _q(role), sql.SQL(attributes), sql.Literal(password)))


def _database(conn: psycopg.Connection, dbname: str, connectors: tuple[str, ...]) -> None:
    if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
        conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(_q(dbname), _q(OWNER)))
    else:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(_q(dbname), _q(OWNER)))
    conn.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(
        _q(dbname)))
    conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
        _q(dbname), sql.SQL(", ").join(_q(r) for r in connectors)))


def _legacy(conn: psycopg.Connection, new_owner: str) -> None:
    """A cluster made before the roles: hand the old superuser's objects over."""
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (LEGACY_ROLE,)).fetchone():
        conn.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(_q(LEGACY_ROLE),
                                                                  _q(new_owner)))


def _app_database(conn: psycopg.Connection) -> None:
    _legacy(conn, OWNER)
    conn.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
        _q(conn.info.dbname), _q(CDC)))
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
        _q(CDC_SCHEMA), _q(CDC)))
    conn.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(_q(CDC_SCHEMA), _q(CDC)))
    for (table,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s",
                                 (CDC_SCHEMA,)).fetchall():
        conn.execute(sql.SQL("ALTER TABLE {}.{} OWNER TO {}").format(
            _q(CDC_SCHEMA), _q(table), _q(CDC)))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(_q(CDC_SCHEMA), _q(OWNER)))
    conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(
        _q(CDC_SCHEMA), _q(OWNER)))
    conn.execute(sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} "
                         "GRANT SELECT ON TABLES TO {}").format(
        _q(CDC), _q(CDC_SCHEMA), _q(OWNER)))


def _lake_database(conn: psycopg.Connection) -> None:
    _legacy(conn, ETL)
    conn.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
        _q(conn.info.dbname), _q(ETL)))
    conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(_q(ETL)))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(_q(ANALYST)))
    conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(
        _q(ANALYST)))
    conn.execute(sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public "
                         "GRANT SELECT ON TABLES TO {}").format(_q(ETL), _q(ANALYST)))


def bootstrap_roles(conninfo: Callable[[str], str], passwords: dict[str, str], *,
                    app_db: str, lake_db: str, test: bool = False) -> None:
    """Roles (with these passwords), both databases owned by ``ece_owner``, and grants.

    ``conninfo(dbname)`` is the superuser's address of one database.
    """
    with psycopg.connect(conninfo("postgres"), autocommit=True) as conn:
        _roles(conn, passwords, test)
        _database(conn, app_db, (APP, CDC, ETL))
        _database(conn, lake_db, (ETL, ANALYST))
    with psycopg.connect(conninfo(app_db), autocommit=True) as conn:
        _app_database(conn)
    with psycopg.connect(conninfo(lake_db), autocommit=True) as conn:
        _lake_database(conn)
    # The roles of the old layout keep nothing: it was a superuser that every process
    # shared; it stays (a running old process may still hold it) but can no longer log in.
    with psycopg.connect(conninfo("postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                        (LEGACY_ROLE,)).fetchone():
            conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN NOSUPERUSER").format(_q(LEGACY_ROLE)))
