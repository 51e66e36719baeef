"""Helpers for the auction and trade tests (``tests.support.auctiontest``; not fixtures)."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from ece.settings import Settings
from ops.stack.workers import Workers
from tests.support import markettest
from tests.support.apitest import Account, Db

# Tables a failed auction or trade request must leave untouched (besides markettest's).
EXTRA_TABLES = ("auctions", "bids", "trade_offers", "trade_offer_cards")


def snapshot(db: Db) -> dict[str, Any]:
    """Everything a failed request must not change: counts, balances, cards, states."""
    state = markettest.snapshot(db)
    for table in EXTRA_TABLES:
        state[table] = int(db.value(f"SELECT count(*) FROM {table}"))
    state["auction_states"] = db.rows(
        "SELECT id, status, result, current_bid_cents, current_bidder_id, bid_count, ends_at "
        "FROM auctions ORDER BY id"
    )
    state["offer_states"] = db.rows("SELECT id, status FROM trade_offers ORDER BY id")
    return state


def held_total(db: Db) -> int:
    return int(db.value(
        "SELECT coalesce(sum(balance_cents), 0) FROM ledger_accounts WHERE kind = 'user_held'"
    ))


def assert_books_balance(db: Db) -> None:
    """The ledger sums to zero, no user is negative, and the money held is exactly the
    leading bids of the active auctions (one statement: one snapshot)."""
    total, negative, held, leading = db.rows(
        "SELECT (SELECT coalesce(sum(balance_cents), 0) FROM ledger_accounts),"
        " (SELECT count(*) FROM ledger_accounts WHERE user_id IS NOT NULL AND balance_cents < 0),"
        " (SELECT coalesce(sum(balance_cents), 0) FROM ledger_accounts WHERE kind = 'user_held'),"
        " (SELECT coalesce(sum(current_bid_cents), 0) FROM auctions WHERE status = 'active')"
    )[0]
    assert total == 0, f"ledger sums to {total}"
    assert negative == 0
    assert held == leading, f"held {held} != leading bids {leading}"


async def create_auction(
    client: httpx.AsyncClient, seller: Account, card_id: str, **fields: Any
) -> dict[str, Any]:
    body = {"card_id": card_id, "start_price_cents": 1000, "duration_seconds": 60, **fields}
    r = await client.post("/auctions", headers=seller.auth, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def bid(
    client: httpx.AsyncClient, bidder: Account, auction_id: str, amount_cents: int
) -> httpx.Response:
    return await client.post(
        f"/auctions/{auction_id}/bids", headers=bidder.auth, json={"amount_cents": amount_cents}
    )


def set_ends_in(db: Db, auction_id: str, seconds: float) -> None:
    """Move an auction's end (the API allows 60 s at least; tests need seconds)."""
    db.rows(
        "UPDATE auctions SET "
        " starts_at = least(starts_at, clock_timestamp() + make_interval(secs => %s) "
        "   - interval '1 minute'),"
        " ends_at = clock_timestamp() + make_interval(secs => %s) "
        "WHERE id = %s RETURNING id",
        seconds, seconds, auction_id,
    )


def balances(db: Db, user_id: str) -> tuple[int, int]:
    rows = dict(db.rows(
        "SELECT kind, balance_cents FROM ledger_accounts WHERE user_id = %s", user_id
    ))
    return int(rows["user_available"]), int(rows["user_held"])


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextmanager
def running_workers(settings: Settings, count: int = 1, *args: str) -> Iterator[list[Workers]]:
    """``count`` worker processes started the way the stack starts them, stopped after."""
    parts: list[Workers] = []
    try:
        for _ in range(count):
            part = Workers(settings, args=args)
            part.launch()
            parts.append(part)
        for part in parts:
            part.wait_ready()
        yield parts
    finally:
        for part in parts:
            part.stop()
