"""Marketplace tests: the shared API fixtures, plus the ledger invariants that must
hold after every single test."""

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def ledger_invariants(db: Any) -> Iterator[None]:
    """After every test: the books balance, no user balance is negative, and every
    maintained balance equals the sum of its entries."""
    yield
    assert db.value("SELECT coalesce(sum(balance_cents), 0) FROM ledger_accounts") == 0
    assert db.value("SELECT coalesce(sum(amount_cents), 0) FROM ledger_entries") == 0
    negative = db.value(
        "SELECT count(*) FROM ledger_accounts WHERE user_id IS NOT NULL AND balance_cents < 0"
    )
    assert negative == 0
    drift = db.rows(
        "SELECT a.id, a.balance_cents, coalesce(sum(e.amount_cents), 0) FROM ledger_accounts a "
        "LEFT JOIN ledger_entries e ON e.account_id = a.id GROUP BY a.id "
        "HAVING a.balance_cents <> coalesce(sum(e.amount_cents), 0)"
    )
    assert drift == []
    unbalanced = db.rows(
        "SELECT transaction_id FROM ledger_entries GROUP BY transaction_id "
        "HAVING sum(amount_cents) <> 0"
    )
    assert unbalanced == []
