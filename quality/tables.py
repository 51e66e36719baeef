"""A table's quality suite, declared as data: keys, required fields, value rules, SQL rules.

Every silver and gold table gets one :class:`TableSuite` (``quality/silver_suites.py``,
``quality/gold_suites.py``); nothing per table is code. A suite turns into
great-expectations expectations on one dataframe read from the lake:

- ``key``: each key column not null, and unique (compound when several);
- ``required``: completeness, each column not null;
- ``in_sets`` / ``positive`` / ``non_negative``: column value expectations;
- ``rules``: referential integrity and business rules that need other rows or
  tables. Each is a DuckDB expression over the row (alias ``t``) that is NULL when
  the row is fine and otherwise says what is wrong (a sale whose buyer is not in
  ``silver.users``, a ledger day that does not sum to zero). The expression becomes
  a column of the frame and GE expects it to be null, so its unexpected values name
  the offending rows in the results and Data Docs. Anti-joins run in DuckDB, where
  the data is; GE judges and reports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from quality.suite import Check

if TYPE_CHECKING:
    import duckdb

_REFERENCE = re.compile(r"\bece\.(silver|gold)\.([a-z_][a-z0-9_]*)")
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "DOUBLE", "FLOAT",
            "DECIMAL", "BOOLEAN", "UBIGINT", "UINTEGER")


@dataclass(frozen=True)
class Rule:
    """One SQL-computed check: ``violation`` is NULL for a good row, else the reason."""

    name: str
    description: str
    violation: str
    warn_only: bool = False  # known benign causes exist (said in the description)

    @property
    def reads(self) -> list[tuple[str, str]]:
        """(layer, table) pairs the expression reads: they must exist to run it."""
        return sorted({(m.group(1), m.group(2)) for m in _REFERENCE.finditer(self.violation)})

    @property
    def column(self) -> str:
        return f"_rule_{self.name}"


def named(noun: str, column: str = "id") -> str:
    """The SQL text naming the checked row in a violation: ``'<noun> ' || t.<column>``."""
    return f"'{noun} ' || CAST(t.{column} AS VARCHAR)"


def when(name: str, description: str, condition: str, what: str, why: str,
         warn_only: bool = False) -> Rule:
    """A rule broken by every row where ``condition`` holds; it says ``what || why``."""
    return Rule(name, description, f"CASE WHEN {condition} THEN {what} || ' {why}' END",
                warn_only)


def resolves(column: str, target: str, what: str, key: str = "id") -> Rule:
    """Referential integrity: a non-null ``column`` names an existing row of ``target``."""
    return Rule(
        f"{column}_resolves", f"every {column} is a {what} in {target}",
        f"CASE WHEN t.{column} IS NOT NULL AND NOT EXISTS "
        f"(SELECT 1 FROM ece.{target} AS r WHERE r.{key} = t.{column}) "
        f"THEN '{column} ' || CAST(t.{column} AS VARCHAR) || ' not in {target}' END")


@dataclass(frozen=True)
class TableSuite:
    """The expectations of one lake table (``ece.<layer>.<name>``)."""

    layer: str
    name: str
    key: tuple[str, ...]
    required: tuple[str, ...] = ()
    in_sets: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    positive: tuple[str, ...] = ()
    non_negative: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()

    @property
    def asset(self) -> str:
        return f"{self.layer}/{self.name}"

    @property
    def table(self) -> str:
        return f"ece.{self.layer}.{self.name}"

    @property
    def suite_name(self) -> str:
        return f"{self.layer}_{self.name}"

    def column_checks(self) -> tuple[Check, ...]:
        """The expectations on the table's own columns (no other table read)."""
        checks = [_not_null(c, f"every row has a {c} (key)") for c in self.key]
        if len(self.key) == 1:
            checks.append(_expect(f"{self.key[0]}_unique", f"one row per {self.key[0]}",
                                  "ExpectColumnValuesToBeUnique", column=self.key[0]))
        else:
            checks.append(_expect("key_unique", f"one row per ({', '.join(self.key)})",
                                  "ExpectCompoundColumnsToBeUnique",
                                  column_list=list(self.key)))
        checks += [_expect(f"{c}_in_set", f"{c} is one of {', '.join(map(str, values))}",
                           "ExpectColumnValuesToBeInSet", column=c, value_set=list(values))
                   for c, values in self.in_sets.items()]
        checks += [_not_null(c, f"every row has a {c} (required)") for c in self.required]
        checks += [_expect(f"{c}_positive", f"{c} > 0", "ExpectColumnValuesToBeBetween",
                           column=c, min_value=0, strict_min=True) for c in self.positive]
        checks += [_expect(f"{c}_not_negative", f"{c} >= 0", "ExpectColumnValuesToBeBetween",
                           column=c, min_value=0) for c in self.non_negative]
        return tuple(checks)

    def rule_checks(self) -> tuple[Check, ...]:
        """One "expect the violation column to be null" per rule."""
        return tuple(_expect(r.name, r.description, "ExpectColumnValuesToBeNull",
                             column=r.column) for r in self.rules)

    def checks(self) -> tuple[Check, ...]:
        return self.column_checks() + self.rule_checks()

    @property
    def columns(self) -> list[str]:
        """The table's columns the column checks read, in order, once each."""
        names = [*self.key, *self.in_sets, *self.required, *self.positive, *self.non_negative]
        return list(dict.fromkeys(names))

    @property
    def reads(self) -> list[tuple[str, str]]:
        """Other tables the rules read (the Dagster check depends on them too)."""
        own = (self.layer, self.name)
        return sorted({ref for r in self.rules for ref in r.reads if ref != own})

    def frame_sql(self, types: Mapping[str, str], rules: tuple[Rule, ...],
                  params: Mapping[str, object]) -> str:
        """The one query whose result GE validates: checked columns + one per rule.

        Non-numeric columns are read as text: pandas has no UUID or JSON dtype and
        GE compares text reliably. ``params`` fill ``{name}`` placeholders of the
        rules (the fee rate comes from settings, not from the registry).
        """
        select = [f't.{c} AS "{c}"' if types.get(c, "").split("(")[0] in _NUMERIC
                  else f'CAST(t.{c} AS VARCHAR) AS "{c}"' for c in self.columns]
        for rule in rules:
            expression = rule.violation
            for name, value in params.items():
                expression = expression.replace("{" + name + "}", str(value))
            select.append(f"({expression}) AS {rule.column}")
        return f"SELECT {', '.join(select)} FROM {self.table} AS t"


def _expect(name: str, description: str, expectation: str, **kwargs: Any) -> Check:
    """A check building GE's ``expectation`` class (looked up once GE is imported)."""
    return Check(name, description, lambda ex: getattr(ex, expectation)(**kwargs))


def _not_null(column: str, description: str) -> Check:
    return _expect(f"{column}_not_null", description, "ExpectColumnValuesToNotBeNull",
                   column=column)


def column_types(con: duckdb.DuckDBPyConnection, layer: str, table: str) -> dict[str, str]:
    rows = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = 'ece' "
        "AND schema_name = ? AND table_name = ?", [layer, table]).fetchall()
    return {str(name): str(kind) for name, kind in rows}
