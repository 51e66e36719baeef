"""Trade offer tests reuse the API fixtures (``tests/api/conftest.py``), the API
helpers (``apitest``), the marketplace helpers (``markettest``) and the auction test
helpers (``auctiontest``), loaded by path because test folders are not packages."""

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent


def _api_fixtures() -> ModuleType:
    for folder in (TESTS / "api", TESTS / "market", TESTS / "auctions"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    name = "tests_api_fixtures"  # shared with tests/market: one module, one set of functions
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TESTS / "api" / "conftest.py")
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

from auctiontest import assert_books_balance  # noqa: E402 - needs the path set up above


@pytest.fixture(autouse=True)
def money_invariants(db: Any) -> Iterator[None]:
    yield
    assert_books_balance(db)


@pytest.fixture(scope="session")
def live_url(platform: Any, api_settings: Any) -> str:
    """The API under real uvicorn (the stack's way of running it), for racing requests."""
    platform.require("api")
    return str(platform.part("api").url)
