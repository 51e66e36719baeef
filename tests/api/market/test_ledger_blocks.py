"""The ledger building blocks other services call (holds for bids, settlement from
held money), their lock behaviour, and the database backstops behind them."""

import uuid
from typing import Any

import httpx
import psycopg
import pytest

from api.core.problems import Problem
from api.ledger import service as ledger
from tests.support.apitest import Account, Db, register_and_login
from tests.support.markettest import balance, fund


def test_fee_is_floored_integer_basis_points() -> None:
    assert ledger.fee_for(1_999, 250) == 49
    assert ledger.fee_for(40, 250) == 1
    assert ledger.fee_for(39, 250) == 0
    assert ledger.fee_for(10**12, 250) == 25_000_000_000
    assert ledger.fee_for(12_345, 0) == 0
    assert ledger.fee_for(12_345, 10_000) == 12_345


async def test_hold_release_and_pay_from_held(
    client: httpx.AsyncClient, admin: Account, app: Any, db: Db
) -> None:
    from api.core.db import get_sessionmaker

    bidder = await register_and_login(client)
    seller = await register_and_login(client)
    await fund(client, admin, bidder.id, 1_000)
    bidder_id, seller_id = uuid.UUID(bidder.id), uuid.UUID(seller.id)
    ref = uuid.uuid4()
    async with get_sessionmaker()() as session:
        await ledger.hold(session, bidder_id, 300, "bid_hold", ref)
        assert await ledger.balances(session, bidder_id) == (700, 300)
        await ledger.release(session, bidder_id, 100, "bid_release", ref)
        assert await ledger.balances(session, bidder_id) == (800, 200)
        await session.commit()
    assert await balance(client, bidder) == (800, 200)

    fees_before = db.value("SELECT balance_cents FROM ledger_accounts WHERE kind = 'platform_fees'")
    async with get_sessionmaker()() as session:
        await ledger.pay(
            session, bidder_id, seller_id, 200, 5, "auction_settlement", ref, from_held=True
        )
        await session.commit()
    assert await balance(client, bidder) == (800, 0)
    assert await balance(client, seller) == (195, 0)
    assert (
        db.value("SELECT balance_cents FROM ledger_accounts WHERE kind = 'platform_fees'")
        == fees_before + 5
    )
    kinds = db.rows(
        "SELECT kind, count(*) FROM ledger_transactions WHERE reference_id = %s "
        "GROUP BY kind ORDER BY kind",
        ref,
    )
    assert kinds == [("auction_settlement", 1), ("bid_hold", 1), ("bid_release", 1)]


async def test_refusals_raise_before_writing(
    client: httpx.AsyncClient, admin: Account, app: Any, db: Db
) -> None:
    from api.core.db import get_sessionmaker

    poor = await register_and_login(client)
    other = await register_and_login(client)
    await fund(client, admin, poor.id, 50)
    poor_id, other_id = uuid.UUID(poor.id), uuid.UUID(other.id)
    entries = db.value("SELECT count(*) FROM ledger_entries")
    async with get_sessionmaker()() as session:
        with pytest.raises(Problem) as refused:
            await ledger.hold(session, poor_id, 51, "bid_hold", uuid.uuid4())
        assert refused.value.code == "insufficient_funds"
        with pytest.raises(Problem) as refused:
            await ledger.pay(session, poor_id, other_id, 51, 1, "sale", uuid.uuid4())
        assert refused.value.code == "insufficient_funds"
        with pytest.raises(ValueError):
            await ledger.release(session, poor_id, 1, "bid_release", uuid.uuid4())  # none held
        with pytest.raises(ValueError):
            await ledger.pay(session, poor_id, poor_id, 10, 0, "sale", uuid.uuid4())
        with pytest.raises(ValueError):
            await ledger.hold(session, poor_id, 0, "bid_hold", uuid.uuid4())
        with pytest.raises(ValueError):
            await ledger.hold(session, poor_id, 5, "no_such_kind", uuid.uuid4())
        await session.rollback()
    assert db.value("SELECT count(*) FROM ledger_entries") == entries
    assert await balance(client, poor) == (50, 0)


async def test_database_refuses_overdraft_and_unbalanced_movements(
    client: httpx.AsyncClient, admin: Account, db: Db
) -> None:
    """The application checks are not the last line: the CHECK and the deferred
    balance trigger refuse what a buggy caller might insert."""
    user = await register_and_login(client)
    await fund(client, admin, user.id, 10)
    available, held = db.rows(
        "SELECT id FROM ledger_accounts WHERE user_id = %s ORDER BY kind", user.id
    )
    with psycopg.connect(db.url) as conn:  # overdraft: 11 out of 10
        tx = conn.execute(
            "INSERT INTO ledger_transactions (kind) VALUES ('adjustment') RETURNING id"
        ).fetchone()
        assert tx is not None
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO ledger_entries (transaction_id, account_id, amount_cents) "
                "VALUES (%s, %s, -11), (%s, %s, 11)",
                (tx[0], available[0], tx[0], held[0]),
            )
    with psycopg.connect(db.url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        tx = conn.execute(
            "INSERT INTO ledger_transactions (kind) VALUES ('adjustment') RETURNING id"
        ).fetchone()
        assert tx is not None
        conn.execute(
            "INSERT INTO ledger_entries (transaction_id, account_id, amount_cents) "
            "VALUES (%s, %s, 5)",
            (tx[0], available[0]),
        )
        conn.commit()  # the deferred trigger finds the transaction unbalanced
    assert await balance(client, user) == (10, 0)


async def test_user_accounts_are_locked_platform_accounts_are_not(
    client: httpx.AsyncClient, app: Any, db: Db
) -> None:
    """lock_accounts holds the users' rows; the shared platform rows stay free until an
    entry moves them (so a sale holds them only from its ledger write to COMMIT)."""
    from api.core.db import get_sessionmaker

    someone = await register_and_login(client)
    async with get_sessionmaker()() as session:
        accounts = await ledger.lock_accounts(
            session, [uuid.UUID(someone.id)], [ledger.PLATFORM_FEES, ledger.EXTERNAL_DEPOSITS]
        )
        assert accounts.get(uuid.UUID(someone.id), ledger.AVAILABLE).balance_cents == 0
        assert set(accounts.platform) == {ledger.PLATFORM_FEES, ledger.EXTERNAL_DEPOSITS}
        with psycopg.connect(db.url, autocommit=True) as other:
            other.execute("SELECT 1 FROM ledger_accounts WHERE user_id IS NULL FOR UPDATE NOWAIT")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute(
                    "SELECT 1 FROM ledger_accounts WHERE user_id = %s FOR UPDATE NOWAIT",
                    (someone.id,),
                )
        await session.rollback()


async def test_balance_check_survives_a_stale_session_object(
    client: httpx.AsyncClient, admin: Account, app: Any
) -> None:
    """The hold check reads the locked row, not an ORM object loaded earlier."""
    from api.core.db import get_sessionmaker
    from api.ledger.models import LedgerAccount

    spender = await register_and_login(client)
    await fund(client, admin, spender.id, 100)
    spender_id = uuid.UUID(spender.id)
    async with get_sessionmaker()() as session:
        loaded = await session.get(LedgerAccount, await _available_id(session, spender_id))
        assert loaded is not None and loaded.balance_cents == 100
        await ledger.hold(session, spender_id, 60, "bid_hold", uuid.uuid4())
        assert loaded.balance_cents == 100  # the ORM object is stale now ...
        with pytest.raises(Problem):  # ... but the check reads the locked row: 40 left
            await ledger.hold(session, spender_id, 60, "bid_hold", uuid.uuid4())
        await session.rollback()


async def _available_id(session: Any, user_id: uuid.UUID) -> uuid.UUID:
    from sqlalchemy import select

    from api.ledger.models import LedgerAccount

    found = await session.scalar(
        select(LedgerAccount.id).where(
            LedgerAccount.user_id == user_id, LedgerAccount.kind == "user_available"
        )
    )
    assert found is not None
    return uuid.UUID(str(found))
