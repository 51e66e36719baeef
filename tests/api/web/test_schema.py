# ruff: noqa: E501  (SQL statements read better unwrapped)
"""The migration's invariants, exercised with raw SQL (what later code and workers use)."""

import uuid

import psycopg
import pytest
from sqlalchemy import create_engine

from ece.contracts.topics import CAPTURED_TABLES, PUBLICATION
from tests.support.apitest import Account, Db


def test_publication_lists_exactly_the_captured_tables(db: Db) -> None:
    assert (
        db.value("SELECT puballtables FROM pg_publication WHERE pubname = %s", PUBLICATION) is False
    )
    tables = {
        r[0]
        for r in db.rows(
            "SELECT tablename FROM pg_publication_tables WHERE pubname = %s", PUBLICATION
        )
    }
    assert tables == set(CAPTURED_TABLES)
    identities = dict(
        db.rows(
            "SELECT relname, relreplident::text FROM pg_class "
            "WHERE relname = ANY(%s) AND relkind = 'r'",
            list(CAPTURED_TABLES),
        )
    )
    assert identities == {t: "f" for t in CAPTURED_TABLES}


def test_models_match_the_migrated_database(db: Db) -> None:
    """Autogenerate finds nothing to do: models and migration describe one schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from api.migrations.runner import sync_url
    from api.models import metadata

    engine = create_engine(sync_url(db.url))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


def test_upgrade_to_head_is_idempotent(db: Db) -> None:
    from alembic.script import ScriptDirectory

    from api.migrations.runner import alembic_config, upgrade_to_head

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    upgrade_to_head(db.url)
    assert db.value("SELECT version_num FROM alembic_version") == head


def _user(conn: psycopg.Connection, role: str = "user") -> uuid.UUID:
    uid = uuid.uuid4()
    conn.execute(
        "INSERT INTO users (id, email, username, password_hash, role) VALUES (%s, %s, %s, 'x', %s)",
        (uid, f"{uid.hex}@example.com", f"s{uid.hex[:12]}", role),
    )
    return uid


def _card(conn: psycopg.Connection, owner: uuid.UUID) -> uuid.UUID:
    cid = uuid.uuid4()
    conn.execute(
        "INSERT INTO cards (id, name, set_name, number, rarity, owner_id) "
        "VALUES (%s, 'n', 's', '1', 'common', %s)",
        (cid, owner),
    )
    return cid


def test_raw_sql_updates_bump_card_version(db: Db) -> None:
    with psycopg.connect(db.url, autocommit=True) as conn:
        cid = _card(conn, _user(conn))
        version, updated = conn.execute(
            "SELECT version, updated_at FROM cards WHERE id = %s", (cid,)
        ).fetchone()  # type: ignore[misc]
        assert version == 1
        conn.execute("UPDATE cards SET status = 'listed' WHERE id = %s", (cid,))
        conn.execute("UPDATE cards SET version = 1, status = 'available' WHERE id = %s", (cid,))
        version2, updated2 = conn.execute(
            "SELECT version, updated_at FROM cards WHERE id = %s", (cid,)
        ).fetchone()  # type: ignore[misc]
        assert version2 == 3  # even an explicit version write cannot go backwards
        assert updated2 > updated


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO users (email, username, password_hash) VALUES ('UP@example.com', 'upper1', 'x')",
        "INSERT INTO users (email, username, password_hash, role) VALUES ('r@example.com', 'role1', 'x', 'root')",
        "INSERT INTO cards (name, set_name, number, rarity, owner_id) SELECT 'n', 's', '1', 'mythic', id FROM users LIMIT 1",
        "INSERT INTO cards (name, set_name, number, rarity, owner_id, status) SELECT 'n', 's', '1', 'rare', id, 'sold' FROM users LIMIT 1",
        "INSERT INTO cards (name, set_name, number, rarity, owner_id, attributes) SELECT 'n', 's', '1', 'rare', id, '[]' FROM users LIMIT 1",
        "INSERT INTO card_valuations (card_id, value_cents, source) SELECT id, 0, 'sale' FROM cards LIMIT 1",
        "INSERT INTO ledger_accounts (kind) VALUES ('platform_fees')",
        "INSERT INTO ledger_accounts (user_id, kind) SELECT id, 'platform_fees' FROM users LIMIT 1",
        "INSERT INTO ledger_accounts (kind, balance_cents) VALUES ('external_deposits', 5)",
        "UPDATE ledger_accounts SET balance_cents = balance_cents + 100",
    ],
)
def test_constraints_refuse_bad_rows(db: Db, sql: str) -> None:
    with psycopg.connect(db.url, autocommit=True) as conn:
        _card(conn, _user(conn))
        with pytest.raises(psycopg.errors.IntegrityError):
            conn.execute(sql)


def test_username_unique_case_insensitive(db: Db) -> None:
    with psycopg.connect(db.url, autocommit=True) as conn:
        name = f"Case{uuid.uuid4().hex[:8]}"
        conn.execute(
            "INSERT INTO users (email, username, password_hash) VALUES (%s, %s, 'x')",
            (f"{name.lower()}@a.com", name),
        )
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO users (email, username, password_hash) VALUES (%s, %s, 'x')",
                (f"{name.lower()}@b.com", name.upper()),
            )


def test_audit_events_are_append_only(db: Db, user: Account) -> None:
    with psycopg.connect(db.url, autocommit=True) as conn:
        owner = _user(conn)
        conn.execute(
            "INSERT INTO card_history (card_id, to_user_id, reason) VALUES (%s, %s, 'issue')",
            (_card(conn, owner), owner),
        )
        assert conn.execute("SELECT count(*) FROM audit_events").fetchone()[0] > 0  # type: ignore[index]
        for sql in (
            "UPDATE audit_events SET action = 'tampered'",
            "DELETE FROM audit_events",
            "TRUNCATE audit_events",
            "DELETE FROM card_history",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)


def test_one_active_listing_and_auction_per_card(db: Db) -> None:
    with psycopg.connect(db.url, autocommit=True) as conn:
        seller = _user(conn)
        cid = _card(conn, seller)
        conn.execute(
            "INSERT INTO listings (card_id, seller_id, price_cents) VALUES (%s, %s, 100)",
            (cid, seller),
        )
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO listings (card_id, seller_id, price_cents) VALUES (%s, %s, 200)",
                (cid, seller),
            )
        conn.execute("UPDATE listings SET status = 'cancelled' WHERE card_id = %s", (cid,))
        conn.execute(
            "INSERT INTO listings (card_id, seller_id, price_cents) VALUES (%s, %s, 300)",
            (cid, seller),
        )
        auction = (
            "INSERT INTO auctions (card_id, seller_id, start_price_cents, starts_at, ends_at) "
            "VALUES (%s, %s, 100, now(), now() + interval '1 hour')"
        )
        conn.execute(auction, (cid, seller))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(auction, (cid, seller))
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO sales (listing_id, card_id, buyer_id, seller_id, price_cents, fee_cents) "
                "SELECT id, card_id, seller_id, seller_id, 100, 1 FROM listings WHERE card_id = %s LIMIT 1",
                (cid,),
            )


def test_ledger_entries_move_balances_and_must_balance(db: Db) -> None:
    with psycopg.connect(db.url) as conn:
        uid = _user(conn)
        conn.execute(
            "INSERT INTO ledger_accounts (user_id, kind) VALUES (%s, 'user_available'), (%s, 'user_held')",
            (uid, uid),
        )
        conn.commit()
        avail = conn.execute(
            "SELECT id FROM ledger_accounts WHERE user_id = %s AND kind = 'user_available'", (uid,)
        ).fetchone()[0]  # type: ignore[index]
        ext = conn.execute(
            "SELECT id FROM ledger_accounts WHERE user_id IS NULL AND kind = 'external_deposits'"
        ).fetchone()[0]  # type: ignore[index]

        def movement(amount: int, balanced: bool = True) -> None:
            tx = uuid.uuid4()
            conn.execute("INSERT INTO ledger_transactions (id, kind) VALUES (%s, 'deposit')", (tx,))
            conn.execute(
                "INSERT INTO ledger_entries (transaction_id, account_id, amount_cents) VALUES (%s, %s, %s)",
                (tx, avail, amount),
            )
            conn.execute(
                "INSERT INTO ledger_entries (transaction_id, account_id, amount_cents) VALUES (%s, %s, %s)",
                (tx, ext, -amount if balanced else -amount + 1),
            )
            conn.commit()

        movement(500)
        assert conn.execute(
            "SELECT balance_cents FROM ledger_accounts WHERE id = %s", (avail,)
        ).fetchone() == (500,)
        with pytest.raises(psycopg.errors.CheckViolation):  # unbalanced: refused at COMMIT
            movement(100, balanced=False)
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation):  # overdraft
            movement(-501)
        conn.rollback()
        assert conn.execute(
            "SELECT balance_cents FROM ledger_accounts WHERE id = %s", (avail,)
        ).fetchone() == (500,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM ledger_entries")
        conn.rollback()


def test_an_auction_settles_at_most_once_in_the_database(db: Db) -> None:
    """Even a closer that lost its status guard could not book a second settlement."""
    auction_id = uuid.uuid4()
    settlement = (
        "INSERT INTO ledger_transactions (kind, reference_id) VALUES ('auction_settlement', %s)"
    )
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute(settlement, (auction_id,))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(settlement, (auction_id,))
        # Other kinds may share a reference (a bid's hold and its release, say).
        for _ in range(2):
            conn.execute(
                "INSERT INTO ledger_transactions (kind, reference_id) VALUES ('bid_hold', %s)",
                (auction_id,),
            )
