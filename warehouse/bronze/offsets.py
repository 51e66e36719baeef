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

``drained`` records that the landing that wrote the row read the partition to its
end. Together with "high watermark <= next offset" it proves a topic has nothing
new without polling it, also on the local broker, whose reported high watermark
is only the base offset of the last record batch + 1 (a position in the middle of
that batch, left by a capped or crashed run, is then flagged as not drained).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from warehouse.lake import retry_conflicts

TABLE = "ece.bronze._offsets"


@dataclass(frozen=True)
class Progress:
    """Where landing stands on one topic of one epoch."""

    positions: dict[int, int]  # partition -> next offset to land
    drained: bool  # every partition was read to its end by the last landing


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    retry_conflicts(lambda: con.execute(f"""
        CREATE TABLE IF NOT EXISTS {TABLE} (
            epoch VARCHAR NOT NULL,
            topic VARCHAR NOT NULL,
            "partition" INTEGER NOT NULL,
            next_offset BIGINT NOT NULL,
            drained BOOLEAN NOT NULL,
            updated_at TIMESTAMP WITH TIME ZONE NOT NULL
        )"""))


def read(con: duckdb.DuckDBPyConnection, epoch: str, topic: str) -> Progress:
    """The progress of one topic (no rows: start at offset 0 of this epoch)."""
    rows = con.execute(
        f'SELECT "partition", next_offset, drained FROM {TABLE} WHERE epoch = ? AND topic = ? '
        'QUALIFY row_number() OVER (PARTITION BY "partition" '
        'ORDER BY next_offset DESC, drained DESC) = 1', [epoch, topic]).fetchall()
    return Progress(positions={int(p): int(o) for p, o, _ in rows},
                    drained=bool(rows) and all(bool(d) for _, _, d in rows))


def ensure_rows(con: duckdb.DuckDBPyConnection, epoch: str, topic: str,
                partitions: list[int]) -> None:
    """Give every partition a row at offset 0 so later updates always delete one.

    Without a row to delete, two first-time landers would both just insert and
    never conflict. Two racing ``ensure_rows`` may both insert: :func:`read` takes
    the furthest row per partition and :func:`write` replaces all of them.
    """
    known = read(con, epoch, topic).positions
    missing = [p for p in partitions if p not in known]
    if missing:
        con.executemany(f"INSERT INTO {TABLE} VALUES (?, ?, ?, 0, false, now())",
                        [[epoch, topic, p] for p in missing])


def write(con: duckdb.DuckDBPyConnection, epoch: str, topic: str,
          positions: dict[int, int], drained: bool) -> None:
    """Replace the progress of these partitions (call inside the landing transaction)."""
    for partition, next_offset in positions.items():
        con.execute(f'DELETE FROM {TABLE} WHERE epoch = ? AND topic = ? AND "partition" = ?',
                    [epoch, topic, partition])
        con.execute(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, now())",
                    [epoch, topic, partition, next_offset, drained])
