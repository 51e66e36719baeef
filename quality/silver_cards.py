"""The column suite of ``ece.silver.cards``, for callers holding a dataframe.

What downstream marts rely on: one row per card id (the dedupe worked), every card
has an owner (portfolio value sums per owner), and rarity is one of the values the
API accepts (market trends group by it). The declaration lives in the registry
(:data:`quality.silver_suites.CARDS`, which also holds the cross-table rules).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quality.silver_suites import CARDS, RARITIES
from quality.suite import Check, CheckOutcome, run

if TYPE_CHECKING:
    import pandas as pd

ASSET = CARDS.asset
TABLE = CARDS.table
COLUMNS = tuple(CARDS.columns)
CHECKS: tuple[Check, ...] = CARDS.column_checks()

__all__ = ["ASSET", "CHECKS", "COLUMNS", "RARITIES", "TABLE", "validate"]


def validate(df: pd.DataFrame) -> list[CheckOutcome]:
    """Run the column checks on a dataframe holding at least :data:`COLUMNS`."""
    return run(CARDS.suite_name, df, CHECKS)
