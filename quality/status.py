"""The latest verdict of every check, from ``ece.quality.check_results`` (for ``ece status``).

A check's latest row decides: a failure fixed by a later run disappears here. Rules
marked warn-only (known benign causes) are reported apart and do not make the
status unhealthy.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from ece.settings import Settings
from quality.results import TABLE
from warehouse.lake import table_exists


@dataclass(frozen=True)
class Failure:
    asset: str
    check: str
    observed_value: str
    warn_only: bool


def latest_failures(con: duckdb.DuckDBPyConnection) -> list[Failure]:
    """Checks whose most recent evaluation failed, by asset then check."""
    if not table_exists(con, "quality", "check_results"):
        return []
    rows = con.execute(f"""
        SELECT asset, "check", coalesce(observed_value, ''),
               coalesce(details->>'severity', 'error') = 'warn'
        FROM {TABLE}
        QUALIFY row_number() OVER (PARTITION BY asset, "check" ORDER BY checked_at DESC) = 1
            AND NOT success
        ORDER BY asset, "check"
    """).fetchall()
    return [Failure(str(a), str(c), str(o), bool(w)) for a, c, o, w in rows]


def summary(failures: list[Failure], limit: int = 4) -> tuple[bool, str]:
    """(healthy, one line) for the status table."""
    errors = [f for f in failures if not f.warn_only]
    warnings = len(failures) - len(errors)
    if not failures:
        return True, "every check passed on its latest run"
    shown = ", ".join(f"{f.asset} {f.check} ({f.observed_value})" for f in errors[:limit])
    more = f" and {len(errors) - limit} more" if len(errors) > limit else ""
    warned = f"; {warnings} warning(s)" if warnings else ""
    return not errors, (f"{len(errors)} failing: {shown}{more}{warned}" if errors
                        else f"no failing check{warned}")


def lake_summary(settings: Settings) -> tuple[bool, str]:
    """The status line from the lake itself; a lake not created yet is not a failure."""
    from warehouse.lake import connect

    try:
        con = connect(settings, read_only=True)
    except Exception as exc:  # noqa: BLE001 - no lake yet (fresh platform): said, not raised
        return True, f"no check results readable ({type(exc).__name__})"
    try:
        if not table_exists(con, "quality", "check_results"):
            return True, "no check has run yet"
        return summary(latest_failures(con))
    finally:
        con.close()
