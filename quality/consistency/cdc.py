"""CDC completeness: every committed row version of a captured table reached bronze.

For each row PostgreSQL holds (its current version, named by ``xmin``), bronze
must hold the change event that wrote it (``tx_id = xmin``) or a snapshot read
taken after it. A version that is not landed yet but waits on the topic past the
lake's offsets is *pending*, not missing: it was committed after the last landing.
A version found in neither is given ``settle_s`` to appear on the topic (the CDC
is milliseconds behind a commit) before it is reported missing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from quality.consistency.capture import Capture
from quality.consistency.model import Row, figure, first, verdict

XID_SPAN = 4_294_967_296  # PostgreSQL's xmin is the 32-bit transaction id
SETTLE_S = 5.0


@dataclass
class TableState:
    rows: int = 0
    landed: int = 0
    pending: int = 0
    missing: int = 0
    missing_keys: list[str] = field(default_factory=list)


def _covers(alias: str) -> str:
    """The event ``alias`` wrote the row version ``p`` (or a snapshot read it)."""
    return (f"({alias}.tx % {XID_SPAN} = p.x OR ({alias}.op = 'r' AND "
            f"({alias}.tx IS NULL OR {alias}.tx > p.x)))")


def judge(cap: Capture, name: str) -> TableState:
    sql = f"""
    WITH b AS (SELECT k, op, tx FROM _b_{name}),  -- bronze, copied by the capture
    judged AS (
        SELECT p.k,
               coalesce(bool_or({_covers('b')}), false) AS landed,
               coalesce((SELECT bool_or({_covers('q')}) FROM _pending q
                         WHERE q.tbl = ? AND q.k = p.k), false) AS pending
        FROM _pg_{name} p LEFT JOIN b ON b.k = p.k
        GROUP BY p.k, p.x
    )
    SELECT count(*), count(*) FILTER (WHERE landed),
           count(*) FILTER (WHERE NOT landed AND pending),
           count(*) FILTER (WHERE NOT landed AND NOT pending),
           (list(k ORDER BY k) FILTER (WHERE NOT landed AND NOT pending))[1:5]
    FROM judged"""
    row = cap.con.execute(sql, [name]).fetchone()
    assert row is not None
    return TableState(int(row[0]), int(row[1]), int(row[2]), int(row[3]), list(row[4] or []))


def completeness(cap: Capture, settle_s: float = SETTLE_S) -> dict[str, TableState]:
    """Every table's state, after waiting up to ``settle_s`` for unexplained versions."""
    states = {name: judge(cap, name) for name in cap.specs}
    deadline = time.monotonic() + settle_s
    while any(s.missing for s in states.values()) and time.monotonic() < deadline:
        time.sleep(0.25)
        if cap.pending.drain():
            cap.register()
            for name, state in list(states.items()):
                if state.missing:
                    states[name] = judge(cap, name)
    return states


def rows(states: dict[str, TableState]) -> list[Row]:
    out = []
    for name, s in states.items():
        found = f"{figure(s.landed)} in bronze"
        if s.pending:
            found += f", {figure(s.pending)} on the topic (after the last landing)"
        if s.missing:
            found += f", {figure(s.missing)} missing"
        out.append(Row(
            store="cdc", what=f"bronze.{name}", expected=f"{figure(s.rows)} committed rows",
            found=found, verdict=verdict(s.missing == 0),
            detail=f"missing: {first(s.missing_keys)}" if s.missing else ""))
    return out
