"""PostgreSQL against the lake's silver tables: rows and money totals per table.

Silver is rebuilt from bronze by each refresh, so it may be behind PostgreSQL by
what happened since: the keys changed after the lake last looked are left out of
both sides. Those are the keys of events still on the topic past the landed
offsets, and those of bronze rows landed after the silver table's last build
(the build records the ``max(_ingested_at)`` of its inputs, :mod:`warehouse.builds`).
What remains must be identical: same keys, and per key the same money columns,
so equal counts and totals are the consequence, and the first differing keys are
named when they are not.
"""

from __future__ import annotations

import json

from quality.consistency.capture import Capture, ident, key_sql
from quality.consistency.model import Row, figure, first, verdict
from warehouse.lake import table_columns
from warehouse.sql import models


def silver_tables() -> set[str]:
    return {m.name for m in models("silver")}


def _built_through(cap: Capture, name: str) -> str | None:
    """The newest bronze ``_ingested_at`` the silver table's last build read."""
    raw = cap.builds.get(f"ece.silver.{name}")
    if not raw:
        return None
    try:
        seen = json.loads(raw).get(name)
    except (ValueError, AttributeError):
        return None
    return str(seen[1]) if isinstance(seen, list) and len(seen) == 2 and seen[1] else None


def _late_sql(cap: Capture, name: str) -> tuple[str, list[object]]:
    parts: list[str] = ["SELECT k FROM _pending WHERE tbl = ?"]
    params: list[object] = [name]
    through = _built_through(cap, name)
    if through is not None:
        parts.append(f"SELECT k FROM _b_{name} WHERE _ingested_at > CAST(? AS TIMESTAMPTZ)")
        params.append(through)
    return " UNION ".join(parts), params


def _totals(label: str, count: int, money: list[str], sums: list[int | None]) -> str:
    return "; ".join([f"{figure(count)} {label}",
                      *(f"{m} {figure(int(s or 0))}" for m, s in zip(money, sums, strict=True))])


def compare_table(cap: Capture, name: str) -> Row:
    spec = cap.specs[name]
    what = f"silver.{name}"
    if ("silver", name) not in cap.present:
        # Nothing landed yet: only rows whose change waits on the topic may be absent.
        counts = cap.con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE k NOT IN "
            f"(SELECT k FROM _pending WHERE tbl = ? AND k IS NOT NULL)) FROM _pg_{name}",
            [name]).fetchone()
        n, unseen = (int(counts[0]), int(counts[1])) if counts else (0, 0)
        note = f"{figure(n - unseen)} on the topic, not landed yet" if n > unseen else ""
        return Row("lake", what, f"{figure(unseen)} rows", "table not built",
                   verdict(unseen == 0),
                   "; ".join(p for p in (note, unseen and "run `ece warehouse refresh`") if p))
    columns = set(table_columns(cap.con, "silver", name))
    if not set(spec.keys) <= columns:
        return Row("lake", what, "key " + ", ".join(spec.keys), "key not in silver",
                   verdict(False), f"silver.{name} lacks {sorted(set(spec.keys) - columns)}")
    money = [m for m in spec.money if m in columns]
    late, params = _late_sql(cap, name)
    differs = " OR ".join(["p.k IS NULL", "s.k IS NULL",
                           *(f"p.{ident(m)} IS DISTINCT FROM s.{ident(m)}" for m in money)])
    cols = "".join(f", CAST({ident(m)} AS BIGINT) AS {ident(m)}" for m in money)
    # One read of the silver table and of the late keys; the rest works on the copies.
    cap.con.execute(f"CREATE OR REPLACE TEMP TABLE _s_{name} AS "
                    f"SELECT {key_sql(spec.keys)} AS k{cols} FROM ece.silver.{ident(name)}")
    cap.con.execute(f"CREATE OR REPLACE TEMP TABLE _late_{name} AS "
                    f"SELECT DISTINCT k FROM ({late}) WHERE k IS NOT NULL", params)
    sql = f"""
    WITH late AS (SELECT k FROM _late_{name}),
    p AS (SELECT * FROM _pg_{name} WHERE k NOT IN (SELECT k FROM late)),
    s AS (SELECT * FROM _s_{name} WHERE k NOT IN (SELECT k FROM late)),
    diff AS (SELECT coalesce(p.k, s.k) AS k FROM p FULL JOIN s ON p.k = s.k WHERE {differs})
    SELECT (SELECT count(*) FROM p){''.join(f', (SELECT sum({ident(m)}) FROM p)' for m in money)},
           (SELECT count(*) FROM s){''.join(f', (SELECT sum({ident(m)}) FROM s)' for m in money)},
           (SELECT count(*) FROM diff), (SELECT list(k ORDER BY k)[1:5] FROM diff),
           (SELECT count(*) FROM late)"""
    row = cap.con.execute(sql).fetchone()
    assert row is not None
    n = len(money)
    pg_count, pg_sums = int(row[0]), list(row[1:1 + n])
    lake_count, lake_sums = int(row[1 + n]), list(row[2 + n:2 + 2 * n])
    diff_n, diff_keys, late_n = int(row[2 + 2 * n]), list(row[3 + 2 * n] or []), int(row[4 + 2 * n])
    detail = []
    if diff_n:
        detail.append(f"{figure(diff_n)} key{'s differ' if diff_n > 1 else ' differs'}: "
                      f"{first(diff_keys)}")
    if late_n:
        detail.append(f"{figure(late_n)} key{'s' if late_n > 1 else ''} changed since the "
                      "last landing or build, not compared")
    return Row("lake", what, _totals("rows", pg_count, money, pg_sums),
               _totals("rows", lake_count, money, lake_sums), verdict(diff_n == 0),
               "; ".join(detail))


def compare(cap: Capture) -> list[Row]:
    built = silver_tables()
    return [compare_table(cap, name) for name in cap.specs if name in built]
