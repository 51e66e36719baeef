"""Trade offer tests: the shared API fixtures, plus the money invariants after each test."""

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.auctiontest import assert_books_balance


@pytest.fixture(autouse=True)
def money_invariants(db: Any) -> Iterator[None]:
    """After every test the books balance and the money held equals the leading bids."""
    yield
    assert_books_balance(db)
