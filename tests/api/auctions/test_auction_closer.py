"""The auction closer as the stack runs it (``python -m api.workers`` processes, real
Postgres/Redis): sold and no_sale settle correctly within 2 s of ``ends_at``, exactly
once, also when a worker is SIGKILLed mid-settlement and restarted, and with two
worker processes competing for the same due auctions."""

import asyncio
import json
import os
import signal
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest

from ece.settings import Settings
from tests.support.api_fixtures import FreshAccount
from tests.support.apitest import Account, Db, register_and_login
from tests.support.auctiontest import (
    balances,
    bid,
    create_auction,
    running_workers,
    set_ends_in,
    wait_for,
)
from tests.support.markettest import fund, new_card

FEE_BPS = 250
CLOSE_WITHIN = timedelta(seconds=2)


@pytest.fixture(scope="module")
async def people(client: httpx.AsyncClient, session_admin: FreshAccount) -> dict[str, Account]:
    admin = await session_admin.current(client)
    seller, alice, bob = await asyncio.gather(*(register_and_login(client) for _ in range(3)))
    for bidder in (alice, bob):
        await fund(client, admin, bidder.id, 1_000_000)
    return {"seller": seller, "alice": alice, "bob": bob}


def settled(db: Db, auction_id: str) -> dict[str, Any]:
    """How the auction ended and every trace the settlement left."""
    status, result, ends_at = db.rows(
        "SELECT status, result, ends_at FROM auctions WHERE id = %s", auction_id)[0]
    return {
        "status": status,
        "result": result,
        "ends_at": ends_at,
        "settlements": db.value("SELECT count(*) FROM ledger_transactions WHERE reference_id = %s "
                                "AND kind = 'auction_settlement'", auction_id),
        "transfers": db.value("SELECT count(*) FROM card_history WHERE reference_id = %s "
                              "AND reason = 'auction'", auction_id),
        "valuations": db.value(
            "SELECT count(*) FROM card_valuations v JOIN auctions a ON a.card_id = v.card_id "
            "WHERE a.id = %s AND v.source = 'auction'", auction_id),
        "audits": db.rows("SELECT actor_id, at, details FROM audit_events "
                          "WHERE action = 'auction.settle' AND entity_id = %s", auction_id),
    }


def wait_ended(db: Db, auction_ids: list[str], settings: Settings, timeout: float = 10) -> None:
    """Wait until all ended; on timeout the assertion carries the workers' log tail."""
    try:
        wait_for(
            lambda: db.value("SELECT count(*) FROM auctions WHERE id = ANY(%s::uuid[]) "
                             "AND status = 'ended'", auction_ids) == len(auction_ids),
            timeout, f"{len(auction_ids)} auctions to end",
        )
    except AssertionError as exc:
        tail = (settings.logs_dir / "workers.log").read_text(errors="replace")[-4000:]
        raise AssertionError(f"{exc}\nworkers.log tail:\n{tail}") from None


def closed_in_time(trace: dict[str, Any]) -> timedelta:
    (_actor, at, _details), = trace["audits"]
    lag: timedelta = at - trace["ends_at"]
    assert timedelta(0) <= lag <= CLOSE_WITHIN, lag
    return lag


async def test_sold_and_no_sale_settle_within_two_seconds(
    client: httpx.AsyncClient, admin: Account, settings: Settings, people: dict[str, Account],
    db: Db,
) -> None:
    seller, alice, bob = people["seller"], people["alice"], people["bob"]
    sold_card = await new_card(client, admin, seller.id)
    sold = (await create_auction(client, seller, sold_card, start_price_cents=5000,
                                 reserve_price_cents=9000))["id"]
    assert (await bid(client, alice, sold, 5000)).status_code == 201
    assert (await bid(client, bob, sold, 10_000)).status_code == 201
    unmet_card = await new_card(client, admin, seller.id)
    unmet = (await create_auction(client, seller, unmet_card, start_price_cents=1000,
                                  reserve_price_cents=50_000))["id"]
    assert (await bid(client, alice, unmet, 2000)).status_code == 201
    quiet_card = await new_card(client, admin, seller.id)
    quiet = (await create_auction(client, seller, quiet_card))["id"]
    seller0, alice0, bob0 = (balances(db, p.id) for p in (seller, alice, bob))
    fees0 = db.value("SELECT balance_cents FROM ledger_accounts WHERE kind = 'platform_fees'")

    with running_workers(settings):
        for aid in (sold, unmet, quiet):
            set_ends_in(db, aid, 1.0)
        wait_ended(db, [sold, unmet, quiet], settings)

    fee = 10_000 * FEE_BPS // 10_000
    trace = settled(db, sold)
    assert (trace["result"], trace["settlements"], trace["transfers"], trace["valuations"]) == (
        "sold", 1, 1, 1)
    closed_in_time(trace)
    (actor, _at, details), = trace["audits"]
    assert actor is None and details["result"] == "sold" and details["winner_id"] == bob.id
    assert balances(db, seller.id) == (seller0[0] + 10_000 - fee, 0)
    assert balances(db, bob.id) == (bob0[0], bob0[1] - 10_000)
    assert db.value("SELECT balance_cents FROM ledger_accounts "
                    "WHERE kind = 'platform_fees'") == fees0 + fee
    card = (await client.get(f"/cards/{sold_card}")).json()  # the cache follows the worker
    assert (card["owner_id"], card["status"]) == (bob.id, "available")
    valuation = db.rows("SELECT value_cents, source FROM card_valuations WHERE card_id = %s",
                        sold_card)
    assert valuation == [(10_000, "auction")]

    for aid, card_id in ((unmet, unmet_card), (quiet, quiet_card)):
        trace = settled(db, aid)
        assert (trace["result"], trace["settlements"], trace["transfers"]) == ("no_sale", 0, 0)
        closed_in_time(trace)
        card = (await client.get(f"/cards/{card_id}")).json()
        assert (card["owner_id"], card["status"]) == (seller.id, "available")
    assert balances(db, alice.id) == (alice0[0] + 2000, alice0[1] - 2000)  # hold released
    auction = (await client.get(f"/auctions/{unmet}")).json()
    assert (auction["status"], auction["result"]) == ("ended", "no_sale")


def _closer_blocked_on_card(db: Db) -> bool:
    """A backend (the closer) waits for a row lock while locking a card."""
    return bool(db.value(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query ILIKE '%%FROM cards%%FOR UPDATE%%'"
    ))


async def test_sigkill_mid_settlement_then_restart_closes_exactly_once(
    client: httpx.AsyncClient, admin: Account, settings: Settings, people: dict[str, Account],
    db: Db,
) -> None:
    seller, alice, bob = people["seller"], people["alice"], people["bob"]
    cards = [await new_card(client, admin, seller.id) for _ in range(4)]
    auctions = [(await create_auction(client, seller, c))["id"] for c in cards]
    for i, aid in enumerate(auctions):
        assert (await bid(client, alice if i % 2 else bob, aid, 3000 + i)).status_code == 201

    with psycopg.connect(db.url) as blocker, running_workers(settings) as (worker,):
        # Hold the first card's row lock: the closer claims that auction, starts settling
        # and stops, mid-transaction, at the card lock. Then SIGKILL it there.
        blocker.execute("SELECT id FROM cards WHERE id = %s FOR UPDATE", (cards[0],))
        set_ends_in(db, auctions[0], 0.2)
        wait_for(lambda: _closer_blocked_on_card(db), 10, "the closer to block on the card")
        for aid in auctions[1:]:  # these end right around the kill
            set_ends_in(db, aid, 0.3)
        await asyncio.sleep(0.25)
        assert worker.pid is not None
        os.killpg(worker.pid, signal.SIGKILL)
        worker.process.proc.wait(10)  # type: ignore[union-attr]
        assert db.value("SELECT status FROM auctions WHERE id = %s", auctions[0]) == "active"
        blocker.rollback()  # the orphaned backend finishes its statement, finds no client, aborts
        worker.start()  # the same part restarted: a new process
        wait_ended(db, auctions, settings)

    for aid in auctions:
        trace = settled(db, aid)
        assert (trace["result"], trace["settlements"], trace["transfers"],
                len(trace["audits"])) == ("sold", 1, 1, 1), aid
    for i, card_id in enumerate(cards):
        expected = alice if i % 2 else bob
        assert str(db.value("SELECT owner_id FROM cards WHERE id = %s", card_id)) == expected.id


async def test_two_worker_processes_settle_each_auction_once(
    client: httpx.AsyncClient, admin: Account, settings: Settings, people: dict[str, Account],
    db: Db,
) -> None:
    seller, alice, bob = people["seller"], people["alice"], people["bob"]
    cards = [await new_card(client, admin, seller.id) for _ in range(8)]
    auctions = [(await create_auction(client, seller, c))["id"] for c in cards]
    for i, aid in enumerate(auctions):
        assert (await bid(client, bob if i % 2 else alice, aid, 1000 + i)).status_code == 201
    log_path = settings.logs_dir / "workers.log"
    log_start = log_path.stat().st_size if log_path.exists() else 0

    with running_workers(settings, 2) as parts:
        pids = {p.pid for p in parts}
        db.rows("UPDATE auctions SET ends_at = clock_timestamp() + interval '1 second' "
                "WHERE id = ANY(%s::uuid[]) RETURNING id", auctions)
        wait_ended(db, auctions, settings)

    for aid in auctions:
        trace = settled(db, aid)
        assert (trace["result"], trace["settlements"], trace["transfers"],
                len(trace["audits"])) == ("sold", 1, 1, 1), aid
        closed_in_time(trace)
    lines = log_path.read_bytes()[log_start:].splitlines()
    closers = [json.loads(line) for line in lines if b'"auction_closed"' in line]
    closed_by = {c["auction_id"]: c["pid"] for c in closers if c["auction_id"] in auctions}
    assert set(closed_by) == set(auctions) and set(closed_by.values()) <= pids


def _move_held(db: Db, user_id: str, cents: int) -> None:
    """A balanced manual adjustment moving ``cents`` from held to available (negative:
    back). It breaks what a settlement relies on, to make one auction unsettleable."""
    db.rows(
        "WITH tx AS (INSERT INTO ledger_transactions (kind) VALUES ('adjustment') RETURNING id) "
        "INSERT INTO ledger_entries (transaction_id, account_id, amount_cents) "
        "SELECT tx.id, a.id, CASE a.kind WHEN 'user_held' THEN -%s ELSE %s END "
        "FROM tx, ledger_accounts a WHERE a.user_id = %s RETURNING id",
        cents, cents, user_id,
    )


async def test_an_unsettleable_auction_does_not_stall_the_others(
    client: httpx.AsyncClient, admin: Account, settings: Settings, people: dict[str, Account],
    db: Db,
) -> None:
    seller, alice = people["seller"], await register_and_login(client)
    await fund(client, admin, alice.id, 10_000)
    broken, fine = [(await create_auction(client, seller, await new_card(client, admin, seller.id)))
                    ["id"] for _ in range(2)]
    assert (await bid(client, alice, broken, 4000)).status_code == 201
    assert (await bid(client, people["bob"], fine, 4000)).status_code == 201
    _move_held(db, alice.id, 4000)  # alice's hold is gone: paying from it must fail
    try:
        with running_workers(settings):
            set_ends_in(db, broken, 0.2)
            set_ends_in(db, fine, 0.5)  # ends after the broken one, which is claimed first
            wait_ended(db, [fine], settings)
            closed_in_time(settled(db, fine))
            assert db.value("SELECT status FROM auctions WHERE id = %s", broken) == "active"
            assert settled(db, broken)["settlements"] == 0
    finally:
        _move_held(db, alice.id, -4000)  # restore; a later closer settles it normally
