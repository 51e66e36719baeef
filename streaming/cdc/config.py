"""Debezium connector properties, derived from :class:`ece.settings.Settings`.

Each non-default value is here because leaving the default broke something measured
on this stack (see ``/work/shared/notes/stack.md``): the 500 ms poll interval gave a
0.6 s median latency, the 60 s offset flush interval replayed a minute of events
after a crash, and an auto-created publication would be ``FOR ALL TABLES`` and
capture the offset table itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ece.contracts.topics import (
    CAPTURED_TABLES,
    EXCLUDED_COLUMNS,
    PUBLICATION,
    SCHEMA,
    SLOT,
)
from ece.db_roles import CDC, password_of
from ece.settings import Settings

# The runner's own schema: Debezium's offsets and the broker epoch live here, out of
# the publication (which lists tables explicitly) and out of Alembic's `public`.
STATE_SCHEMA = "ece_cdc"
OFFSETS_TABLE = "debezium_offsets"
STATE_TABLE = "state"
ENGINE_NAME = "ece-cdc"

# Debezium's own DDL for the JDBC offset store (JdbcOffsetBackingStoreConfig). We create
# the table ourselves because the store looks tables up by bare name in every schema.
OFFSETS_DDL = (
    "CREATE TABLE IF NOT EXISTS {schema}.{table} (id VARCHAR(36) NOT NULL, "
    "offset_key VARCHAR(1255), offset_val VARCHAR(1255), "
    "record_insert_ts TIMESTAMP NOT NULL, record_insert_seq INTEGER NOT NULL, "
    "PRIMARY KEY (id))"
)


@dataclass(frozen=True)
class DbTarget:
    """The pieces of the ``ece_cdc`` role's URL that Debezium wants one by one.

    Debezium logs in as ``ece_cdc`` (REPLICATION and SELECT on the captured tables;
    docs/operations.md "Database roles"); its JDBC driver reads no libpq password file,
    so a local role's generated password is passed explicitly (:meth:`for_cdc`).
    """

    host: str
    port: int
    dbname: str
    user: str
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> DbTarget:
        parts = urlsplit(url)
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            dbname=parts.path.lstrip("/") or "ece",
            user=unquote(parts.username or "ece"),
            password=unquote(parts.password) if parts.password else None,
        )

    @classmethod
    def for_cdc(cls, settings: Settings) -> DbTarget:
        url = settings.role_url(CDC)
        target = cls.from_url(url)
        password = password_of(url, settings.role_password)
        return cls(target.host, target.port, target.dbname, target.user, password)

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.dbname}"


def table_include_list(tables: tuple[str, ...] = CAPTURED_TABLES) -> str:
    """Anchored regexes (Debezium matches them against ``schema.table``)."""
    return ",".join(re.escape(f"{SCHEMA}.{t}") for t in tables)


def column_exclude_list(
    excluded: dict[str, tuple[str, ...]] = EXCLUDED_COLUMNS,
) -> str:
    return ",".join(
        re.escape(f"{SCHEMA}.{table}.{column}")
        for table, columns in excluded.items()
        for column in columns
    )


def debezium_properties(settings: Settings, *, heartbeat_ms: int = 10_000) -> dict[str, str]:
    """All properties of the embedded Postgres connector, as strings."""
    db = DbTarget.for_cdc(settings)
    props: dict[str, str] = {
        "name": ENGINE_NAME,
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        # --- source database ---
        "database.hostname": db.host,
        "database.port": str(db.port),
        "database.user": db.user,
        "database.dbname": db.dbname,
        "topic.prefix": settings.topic_prefix,
        "plugin.name": "pgoutput",
        "publication.name": PUBLICATION,
        "publication.autocreate.mode": "disabled",  # the migration owns it
        "slot.name": SLOT,
        "slot.drop.on.stop": "false",
        "schema.include.list": SCHEMA,
        "table.include.list": table_include_list(),
        "column.exclude.list": column_exclude_list(),
        "snapshot.mode": "initial",  # no offsets -> snapshot (this is how epochs re-snapshot)
        # --- event format (the contract) ---
        "converter.schemas.enable": "false",
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
        "decimal.handling.mode": "string",
        "tombstones.on.delete": "true",
        # --- latency and replay window ---
        "poll.interval.ms": "10",
        "offset.flush.interval.ms": "0",
        "offset.flush.timeout.ms": "10000",
        # Quiet captured tables must still let the slot advance (other databases write WAL).
        "heartbeat.interval.ms": str(heartbeat_ms),
        # --- offsets in the same Postgres ---
        "offset.storage": "io.debezium.storage.jdbc.offset.JdbcOffsetBackingStore",
        "offset.storage.jdbc.connection.url": f"{db.jdbc_url}?currentSchema={STATE_SCHEMA}",
        "offset.storage.jdbc.connection.user": db.user,
        "offset.storage.jdbc.table.name": OFFSETS_TABLE,
        # Required by the store even with password-less (trust/peer) auth, where it is unused.
        "offset.storage.jdbc.connection.password": db.password or "unused",
        # --- connector-internal retries (ours wrap these) ---
        "errors.max.retries": "5",
        "errors.retry.delay.initial.ms": "300",
        "errors.retry.delay.max.ms": "10000",
    }
    if db.password is not None:
        props["database.password"] = db.password
    return props
