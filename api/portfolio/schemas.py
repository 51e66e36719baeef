"""Portfolio answer: integer cents, one line per owned card."""

import uuid

from pydantic import BaseModel


class PortfolioCard(BaseModel):
    card_id: uuid.UUID
    value_cents: int


class PortfolioOut(BaseModel):
    user_id: uuid.UUID
    card_count: int
    value_cents: int
    cards: list[PortfolioCard]
