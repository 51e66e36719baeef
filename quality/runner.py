"""Run one table's suite against the lake: read the frame, skip what cannot run yet.

A table that is not built yet, or a rule whose other table is not built yet (a
fresh lake, a topic nothing was published to), is *skipped*, reported as such and
not stored in ``ece.quality.check_results``: that table holds evaluations only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from quality.suite import CheckOutcome, run
from quality.tables import TableSuite, column_types
from warehouse.lake import table_exists


@dataclass
class SuiteRun:
    """The outcome of one suite: evaluated checks, skipped ones (name -> why), rows read."""

    suite: TableSuite
    outcomes: list[CheckOutcome] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    rows: int = 0

    @property
    def failed(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if not o.success]


def validate_table(con: duckdb.DuckDBPyConnection, suite: TableSuite,
                   params: Mapping[str, object], root: Path | None = None) -> SuiteRun:
    """Validate ``suite.table``; ``params`` fill the rules' placeholders (``fee_bps``)."""
    result = SuiteRun(suite)
    if not table_exists(con, suite.layer, suite.name):
        result.skipped = {c.name: f"{suite.table} not built yet" for c in suite.checks()}
        return result
    rules = []
    for rule in suite.rules:
        missing = [f"ece.{layer}.{table}" for layer, table in rule.reads
                   if not table_exists(con, layer, table)]
        if missing:
            result.skipped[rule.name] = f"{', '.join(missing)} not built yet"
        else:
            rules.append(rule)
    types = column_types(con, suite.layer, suite.name)
    df = con.execute(suite.frame_sql(types, tuple(rules), params)).df()
    names = {r.name for r in rules}
    checks = suite.column_checks() + tuple(c for c in suite.rule_checks() if c.name in names)
    result.outcomes = run(suite.suite_name, df, checks, root)
    result.rows = len(df)
    return result
