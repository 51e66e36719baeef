"""What CDC keeps in and checks against Postgres.

- the broker epoch (last cluster id CDC filled) in ``ece_cdc.state``;
- Debezium's offsets in ``ece_cdc.debezium_offsets`` (wiped to re-snapshot);
- the replication slot: invalidated (``wal_status = 'lost'``) means changes are gone,
  which we report loudly with the fix instead of dropping the slot ourselves;
- the publication: must exist and list every captured table, else Debezium would
  stream nothing for the missing ones without complaint.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from ece.contracts.topics import CAPTURED_TABLES, PUBLICATION, SCHEMA, SLOT
from streaming.cdc.config import (
    ENGINE_NAME,
    OFFSETS_DDL,
    OFFSETS_TABLE,
    STATE_SCHEMA,
    STATE_TABLE,
)


class CdcFatal(RuntimeError):
    """A condition retrying cannot fix: says what happened and how to fix it."""

    def __init__(self, reason: str, fix: str) -> None:
        self.reason, self.fix = reason, fix
        super().__init__(f"{reason}\n  fix: {fix}")


@dataclass(frozen=True)
class SlotInfo:
    """One row of ``pg_replication_slots`` plus the lag behind the current WAL position."""

    active: bool
    active_pid: int | None
    wal_status: str | None
    confirmed_flush_lsn: str | None
    lag_bytes: int | None


def slot_info(conn: psycopg.Connection, slot: str = SLOT) -> SlotInfo | None:
    row = conn.execute(
        "SELECT active, active_pid, wal_status, confirmed_flush_lsn::text, "
        "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
        "FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    ).fetchone()
    if row is None:
        return None
    return SlotInfo(bool(row[0]), row[1], row[2], row[3], row[4])


def lost_slot_error(slot: str = SLOT) -> CdcFatal:
    return CdcFatal(
        f"replication slot {slot!r} was invalidated (wal_status = 'lost'): Postgres removed "
        "WAL it still needed (max_slot_wal_keep_size), so some changes can no longer be "
        "streamed",
        f"after checking no other consumer uses it: SELECT pg_drop_replication_slot('{slot}'); "
        "then `python -m streaming.cdc --resnapshot` (every row is re-sent as op 'r')",
    )


def check_publication(conn: psycopg.Connection) -> None:
    """Fail with the fix if the publication is missing or lacks a captured table."""
    rows = conn.execute(
        "SELECT tablename FROM pg_publication_tables WHERE pubname = %s AND schemaname = %s",
        (PUBLICATION, SCHEMA),
    ).fetchall()
    exists = conn.execute(
        "SELECT 1 FROM pg_publication WHERE pubname = %s", (PUBLICATION,)
    ).fetchone()
    if exists is None:
        raise CdcFatal(
            f"publication {PUBLICATION!r} does not exist",
            "run the migrations (`ece up` or api.migrations.runner.upgrade_to_head); "
            "they create it FOR TABLE <CAPTURED_TABLES>",
        )
    missing = sorted(set(CAPTURED_TABLES) - {r[0] for r in rows})
    if missing:
        raise CdcFatal(
            f"publication {PUBLICATION!r} lacks captured tables: {', '.join(missing)}",
            f"ALTER PUBLICATION {PUBLICATION} ADD TABLE {', '.join(missing)} "
            "(in a migration), or remove them from ece.contracts.topics.CAPTURED_TABLES",
        )


def ensure_state_tables(conn: psycopg.Connection) -> None:
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}")
    conn.execute(OFFSETS_DDL.format(schema=STATE_SCHEMA, table=OFFSETS_TABLE))
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.{STATE_TABLE} ("
        "engine text PRIMARY KEY, cluster_id text NOT NULL, "
        "updated_at timestamptz NOT NULL DEFAULT now())"
    )


def has_offsets(conn: psycopg.Connection) -> bool:
    row = conn.execute(f"SELECT count(*) FROM {STATE_SCHEMA}.{OFFSETS_TABLE}").fetchone()
    return bool(row and row[0])


def stored_epoch(conn: psycopg.Connection) -> str | None:
    row = conn.execute(
        f"SELECT cluster_id FROM {STATE_SCHEMA}.{STATE_TABLE} WHERE engine = %s",
        (ENGINE_NAME,),
    ).fetchone()
    return str(row[0]) if row else None


@dataclass(frozen=True)
class EpochDecision:
    """What :func:`prepare_epoch` did, for the log."""

    cluster_id: str
    previous: str | None
    resnapshot: bool
    reason: str


def prepare_epoch(
    conn: psycopg.Connection, cluster_id: str, *, force_resnapshot: bool = False
) -> EpochDecision:
    """Make Debezium re-snapshot when the broker is not the one it last filled.

    Wiping this engine's offsets (the slot is kept) makes ``snapshot.mode=initial``
    snapshot every table again, then stream on from the slot. The new cluster id is
    stored in the same transaction; a crash before the snapshot completes leaves no
    completed-snapshot offset, so Debezium snapshots again on the next start.
    """
    with conn.transaction():
        ensure_state_tables(conn)
        # One runner at a time may decide (two would wipe each other's progress).
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (ENGINE_NAME,))
        previous = stored_epoch(conn)
        offsets = has_offsets(conn)
        slot = slot_info(conn)
        if force_resnapshot:
            reason = "requested (--resnapshot)"
        elif previous is not None and previous != cluster_id:
            reason = f"new broker epoch ({previous} -> {cluster_id})"
        elif previous is None and offsets:
            reason = "offsets exist but no broker epoch was recorded"
        else:
            reason = ""
        resnapshot = bool(reason)
        if not resnapshot and offsets and slot is None:
            raise CdcFatal(
                f"Debezium offsets exist but replication slot {SLOT!r} is missing: changes "
                "since the slot disappeared cannot be streamed",
                "`python -m streaming.cdc --resnapshot` re-sends every row as op 'r' "
                "(consumers dedupe on LSN)",
            )
        if resnapshot:
            conn.execute(f"DELETE FROM {STATE_SCHEMA}.{OFFSETS_TABLE}")
        conn.execute(
            f"INSERT INTO {STATE_SCHEMA}.{STATE_TABLE} (engine, cluster_id) VALUES (%s, %s) "
            "ON CONFLICT (engine) DO UPDATE SET cluster_id = EXCLUDED.cluster_id, "
            "updated_at = now()",
            (ENGINE_NAME, cluster_id),
        )
    return EpochDecision(cluster_id, previous, resnapshot, reason)
