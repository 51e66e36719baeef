"""`ece demo` and the `ece up` seed, against the real API under uvicorn."""

from typing import Any

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from ece.settings import Settings
from ops.cli.demo import demo_app
from ops.demo.client import api_base, routes_of
from ops.demo.invariants import check_invariants
from ops.demo.traffic import ACTIONS
from ops.seed import ADMIN_USERNAME, SEED_CARDS, SEED_SET, SEED_USERS, seed
from ops.seed import seed_demo_data as seed_demo_data_fn


@pytest.fixture(scope="module")
def live(platform: Any) -> Settings:
    platform.require("api")
    settings: Settings = platform.settings
    return settings


def value(settings: Settings, sql: str, *params: Any) -> Any:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        row = conn.execute(sql, params).fetchone()
        return row[0] if row else None


def state(settings: Settings) -> dict[str, int]:
    tables = ("users", "cards", "ledger_transactions", "ledger_entries", "listings", "sales")
    return {t: int(value(settings, f"SELECT count(*) FROM {t}")) for t in tables}


def deployed(settings: Settings) -> set[str]:
    return routes_of(httpx.get(f"{api_base(settings)}/openapi.json", timeout=10).json())


def test_seed_is_idempotent(live: Settings) -> None:
    said: list[str] = []
    seed_demo_data_fn(live, said.append)
    assert any("demo data: " in line and "created" in line for line in said), said
    first = state(live)
    role = value(live, "SELECT role FROM users WHERE username = %s", ADMIN_USERNAME)
    assert role == "admin"
    assert (live.secrets_dir / "admin_password").exists()
    names = value(live, "SELECT count(*) FROM users WHERE username = ANY(%s)", list(SEED_USERS))
    assert names == len(SEED_USERS)
    assert value(live, "SELECT count(*) FROM cards WHERE set_name = %s", SEED_SET) == SEED_CARDS
    routes = deployed(live)
    if "POST /admin/deposits" in routes:
        deposits = value(
            live,
            "SELECT count(*) FROM ledger_accounts a JOIN users u ON u.id = a.user_id "
            "WHERE u.username = ANY(%s) AND a.kind = 'user_available' AND a.balance_cents > 0",
            list(SEED_USERS),
        )
        assert deposits == len(SEED_USERS)
    if "POST /listings" in routes:
        assert value(live, "SELECT count(*) FROM listings WHERE status = 'active'") >= 1

    with httpx.Client(base_url=api_base(live), timeout=60) as http:
        again = seed(live, http)

    assert (again.users, again.cards, again.deposits, again.listings) == (0, 0, 0, 0)
    assert state(live) == first
    assert check_invariants(live.database_url).hold


def test_demo_drives_traffic_and_keeps_the_invariants(live: Settings) -> None:
    args = ["--users", "3", "--cards", "5", "--minutes", "0.2", "--seed", "7"]
    result = CliRunner().invoke(demo_app, [*args, "--api", api_base(live)])

    out = result.output
    assert result.exit_code == 0, out
    assert "ledger sum: 0 cents" in out
    assert "double sales: 0 " in out
    assert "negative balances: 0 " in out
    assert "unbalanced ledger transactions: 0 " in out
    assert "invariants: OK" in out
    assert "register" in out and "issue-card" in out
    # Whatever is deployed is used; only what is absent is skipped.
    routes = deployed(live)
    for action, (_, needs) in ACTIONS.items():
        if all(route in routes for route in needs):
            assert f"skipping {action}" not in out, action
        else:
            assert f"skipping {action}" in out, action
    assert check_invariants(live.database_url).hold


def test_demo_reports_an_unreachable_api(live: Settings) -> None:
    from ops.stack.base import free_port

    dead = f"http://127.0.0.1:{free_port()}/api/v1"
    result = CliRunner().invoke(demo_app, ["--users", "2", "--minutes", "0", "--api", dead])
    assert result.exit_code == 2
    assert "API unreachable" in result.output
