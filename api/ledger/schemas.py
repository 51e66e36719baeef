"""Money bodies. Amounts are integer cents with a sane ceiling: a typo of a few
digits must be a 422, not a balance nobody can explain."""

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.core.integers import WHOLE

MAX_AMOUNT_CENTS = 10**12  # ten billion currency units: far above any real card

AmountCents = Annotated[int, Field(gt=0, le=MAX_AMOUNT_CENTS, strict=True), WHOLE]
Reference = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class DepositIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: uuid.UUID
    amount_cents: AmountCents
    reference: Reference


class LedgerEntryOut(BaseModel):
    """One entry on one of the caller's accounts.

    ``kind`` is the movement (``deposit``, ``sale``, ``bid_hold``, ...);
    ``account`` says which of the user's two accounts moved (a hold shows as −x on
    ``available`` and +x on ``held``); ``reference_id`` is the sale, bid, auction
    or (for deposits) the UUIDv5 of the external reference.
    """

    id: uuid.UUID
    amount_cents: int
    kind: str
    reference_id: uuid.UUID | None
    created_at: datetime
    account: Literal["available", "held"]
    transaction_id: uuid.UUID


class LedgerPage(BaseModel):
    items: list[LedgerEntryOut]
    next_cursor: str | None


class DepositOut(BaseModel):
    """The credit entry on the user's available account."""

    id: uuid.UUID
    user_id: uuid.UUID
    amount_cents: int
    kind: Literal["deposit"]
    reference: str
    reference_id: uuid.UUID
    transaction_id: uuid.UUID
    created_at: datetime


class BalanceOut(BaseModel):
    available_cents: int
    held_cents: int
