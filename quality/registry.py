"""Every table's suite, by asset: the one list Dagster's checks and the docs are made from.

Each silver and gold SQL model must have a suite; ``tests/warehouse/test_quality.py``
fails when a new ``warehouse/<layer>/<table>.sql`` arrives without one.
"""

from __future__ import annotations

from quality.gold_suites import GOLD_SUITES
from quality.silver_suites import SILVER_SUITES
from quality.tables import TableSuite

SUITES: tuple[TableSuite, ...] = SILVER_SUITES + GOLD_SUITES
BY_ASSET: dict[str, TableSuite] = {s.asset: s for s in SUITES}


def suite_for(asset: str) -> TableSuite:
    """The suite of ``"<layer>/<table>"``."""
    return BY_ASSET[asset]
