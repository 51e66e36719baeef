"""The quality suite of ``ece.silver.cards``.

What downstream marts rely on: one row per card id (the dedupe worked), every card
has an owner (portfolio value sums per owner), and rarity is one of the values the
API accepts (market trends group by it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quality.suite import Check, CheckOutcome, run

if TYPE_CHECKING:
    import pandas as pd

ASSET = "silver/cards"
TABLE = "ece.silver.cards"
COLUMNS = ("id", "rarity", "owner_id")
RARITIES: tuple[str, ...] = ("common", "uncommon", "rare", "epic", "legendary")

CHECKS: tuple[Check, ...] = (
    Check("id_not_null", "every card has an id",
          lambda ex: ex.ExpectColumnValuesToNotBeNull(column="id")),
    Check("id_unique", "one row per card id (CDC duplicates removed)",
          lambda ex: ex.ExpectColumnValuesToBeUnique(column="id")),
    Check("rarity_in_set", f"rarity is one of {', '.join(RARITIES)}",
          lambda ex: ex.ExpectColumnValuesToBeInSet(column="rarity", value_set=list(RARITIES))),
    Check("owner_id_not_null", "every card has an owner",
          lambda ex: ex.ExpectColumnValuesToNotBeNull(column="owner_id")),
)


def validate(df: pd.DataFrame) -> list[CheckOutcome]:
    """Run the suite on a dataframe holding at least :data:`COLUMNS`."""
    return run("silver_cards", df, CHECKS)
