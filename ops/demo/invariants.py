"""The marketplace invariants checked after a demo run (queries in ``invariants.sql``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path

SQL_FILE = Path(__file__).resolve().parent / "invariants.sql"
_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@dataclass
class Invariants:
    ledger_sum_cents: int | None = None
    double_sales: int | None = None
    negative_balances: int | None = None
    unbalanced_transactions: int | None = None
    error: str | None = None

    @property
    def hold(self) -> bool:
        return self.error is None and (
            self.ledger_sum_cents,
            self.double_sales,
            self.negative_balances,
            self.unbalanced_transactions,
        ) == (0, 0, 0, 0)


def load_queries(text: str) -> dict[str, str]:
    """``name -> SQL`` of each ``-- name: <field>`` block (comments dropped, no final ``;``)."""
    parts = _NAME.split(text)
    queries = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.splitlines() if line.strip() and not line.startswith("--")]
        queries[name] = "\n".join(lines).strip().removesuffix(";")
    expected = [f.name for f in fields(Invariants) if f.name != "error"]
    if list(queries) != expected:
        raise RuntimeError(f"{SQL_FILE.name} names {list(queries)}, Invariants has {expected}")
    return queries


INVARIANT_SQL = load_queries(SQL_FILE.read_text())


def check_invariants(database_url: str) -> Invariants:
    """The marketplace invariants, read in one read-only snapshot of the database."""
    import psycopg

    result = Invariants()
    try:
        with psycopg.connect(
            database_url, connect_timeout=5, options="-c default_transaction_read_only=on"
        ) as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            for name, sql in INVARIANT_SQL.items():
                row = conn.execute(sql).fetchone()
                setattr(result, name, int(row[0]) if row else None)
    except psycopg.Error as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:300]
    return result
