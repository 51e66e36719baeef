"""Landing progress stored in the lake itself: ``ece.bronze._offsets``.

Kafka's consumer-group offsets live in the broker and commit separately from the
lake, so a crash between the two would lose or repeat events. Keeping the next
offset in a lake table lets the rows and the progress commit in ONE DuckLake
transaction. Progress is keyed by *epoch* (the broker's cluster id): the local
broker keeps topics in memory, so each start is a new, empty log that begins at
offset 0 again, while a real Kafka cluster keeps one epoch forever.

Every update deletes the previous row of its (epoch, topic, partition) before
inserting the new one. That delete is what makes two concurrent landers conflict
at commit (DuckLake rejects the second delete of the same data), so an offset can
never be landed twice even when the sensor and ``ece warehouse refresh`` overlap.
"""

from __future__ import annotations

import duckdb

TABLE = "ece.bronze._offsets"


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"""
        CREATE TABLE IF NOT EXISTS {TABLE} (
            epoch VARCHAR NOT NULL,
            topic VARCHAR NOT NULL,
            "partition" INTEGER NOT NULL,
            next_offset BIGINT NOT NULL,
            updated_at TIMESTAMP WITH TIME ZONE NOT NULL
        )""")


def read(con: duckdb.DuckDBPyConnection, epoch: str, topic: str) -> dict[int, int]:
    """partition -> next offset to land (absent: start at 0 of this epoch)."""
    rows = con.execute(
        f'SELECT "partition", max(next_offset) FROM {TABLE} WHERE epoch = ? AND topic = ? '
        'GROUP BY ALL', [epoch, topic]).fetchall()
    return {int(p): int(o) for p, o in rows}


def ensure_rows(con: duckdb.DuckDBPyConnection, epoch: str, topic: str,
                partitions: list[int]) -> None:
    """Give every partition a row at offset 0 so later updates always delete one.

    Without a row to delete, two first-time landers would both just insert and
    never conflict.
    """
    known = read(con, epoch, topic)
    missing = [p for p in partitions if p not in known]
    if not missing:
        return
    con.executemany(
        f"INSERT INTO {TABLE} VALUES (?, ?, ?, 0, now())",
        [[epoch, topic, p] for p in missing])


def write(con: duckdb.DuckDBPyConnection, epoch: str, topic: str,
          positions: dict[int, int]) -> None:
    """Replace the progress of these partitions (call inside the landing transaction)."""
    for partition, next_offset in positions.items():
        con.execute(f'DELETE FROM {TABLE} WHERE epoch = ? AND topic = ? AND "partition" = ?',
                    [epoch, topic, partition])
        con.execute(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, now())",
                    [epoch, topic, partition, next_offset])
