"""Marketplace tests reuse the API test fixtures (``tests/api/conftest.py``) and
helpers (``apitest``), loaded by path because test folders are not packages, and
add the ledger invariants that must hold after every single test."""

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
API_TESTS = HERE.parent / "api"


def _api_fixtures() -> ModuleType:
    for folder in (API_TESTS, HERE):  # `import apitest`, `import markettest`
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    name = "tests_api_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, API_TESTS / "conftest.py")
        assert spec is not None and spec.loader is not None
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


_fx = _api_fixtures()
api_settings = _fx.api_settings
app = _fx.app
client = _fx.client
db = _fx.db
user = _fx.user
admin = _fx.admin


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
