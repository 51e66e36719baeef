"""CDC against the real stack: Postgres (migrated), the Tansu broker and Debezium.

No mocks: rows are committed with psycopg and read back from Kafka. Consumers use
``assign`` (no group join: on Tansu a join waits half the session timeout) and start
from the beginning (the broker's high watermark is unreliable).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from ece.contracts.topics import CAPTURED_TABLES, cdc_topic
from ece.db_roles import CDC
from ece.settings import Settings
from ops.stack.base import Part, free_port
from ops.stack.broker import cluster_id
from ops.stack.supervisor import Platform
from streaming.cdc.config import ENGINE_NAME, STATE_SCHEMA, STATE_TABLE
from streaming.cdc.status import read_status
from streaming.topics import schema_path, validator
from streaming.topics.generate import render, table_schema


@dataclass
class Record:
    key: dict[str, Any] | None
    value: dict[str, Any] | None  # None = tombstone
    raw: bytes | None
    offset: int


@pytest.fixture(scope="module")
def cdc(platform: Platform) -> Part:
    platform.require("cdc")
    return platform.part("cdc")


@pytest.fixture(scope="module")
def settings(platform: Platform, cdc: Part) -> Settings:
    return platform.settings


@pytest.fixture()
def db(settings: Settings) -> Iterator[psycopg.Connection]:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        yield conn


# --- helpers ---------------------------------------------------------------


def read_topic(settings: Settings, table: str, done: Callable[[list[Record]], bool],
               timeout: float = 30.0) -> list[Record]:
    """Every message of the table's topic from the beginning, until ``done`` says so."""
    topic = cdc_topic(table, settings.topic_prefix)
    consumer = Consumer({
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": f"test-cdc-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.kafka_session_timeout_ms,
        "fetch.wait.max.ms": 50,
    })
    try:
        partitions: list[int] = []
        deadline = time.monotonic() + 10
        while not partitions and time.monotonic() < deadline:  # the runner creates topics
            meta = consumer.list_topics(topic, timeout=10)
            partitions = list(meta.topics[topic].partitions) if topic in meta.topics else []
            if not partitions:
                time.sleep(0.2)
        assert partitions, f"{topic} does not exist"
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:  # a tombstone is falsy: test `is None`
                raw_key, raw = msg.key(), msg.value()
                try:
                    key = json.loads(raw_key) if raw_key is not None else None
                    value = json.loads(raw) if raw is not None else None
                except ValueError:
                    # Not Debezium's (it writes JSON only): the stream-job tests share this
                    # broker and inject malformed events to prove their dead-letter paths.
                    continue
                records.append(Record(key, value, raw, msg.offset() or 0))
                continue
            if done(records):
                return records
        raise AssertionError(f"{topic}: condition not met after {timeout}s "
                             f"({len(records)} messages read)")
    finally:
        consumer.close()


def ids_in(records: list[Record], field: str = "id") -> set[Any]:
    return {r.key[field] for r in records if r.key is not None and field in r.key}


def has_keys(wanted: set[Any], field: str = "id") -> Callable[[list[Record]], bool]:
    """A ``read_topic`` condition: every wanted key value has been seen."""
    return lambda records: wanted <= {str(k) for k in ids_in(records, field)}


def insert_user(conn: psycopg.Connection) -> str:
    name = f"u{secrets.token_hex(6)}"
    row = conn.execute(
        "INSERT INTO users (email, username, password_hash) VALUES (%s, %s, %s) RETURNING id",
        (f"{name}@example.test", name, "argon2$SECRET-HASH-MUST-NOT-LEAK"),
    ).fetchone()
    assert row is not None
    return str(row[0])


def write_every_table(conn: psycopg.Connection) -> dict[str, set[Any]]:
    """One committed row (or more) in every captured table; returns the keys by table."""
    keys: dict[str, set[Any]] = {t: set() for t in CAPTURED_TABLES}

    def one(sql: str, params: tuple[Any, ...], table: str) -> str:
        row = conn.execute(sql + " RETURNING id", params).fetchone()
        assert row is not None
        keys[table].add(str(row[0]))
        return str(row[0])

    with conn.transaction():
        seller, buyer = insert_user(conn), insert_user(conn)
        keys["users"] |= {seller, buyer}
        one("INSERT INTO wallets (user_id, address) VALUES (%s, %s)",
            (seller, secrets.token_hex(16)), "wallets")
        card = one("INSERT INTO cards (name, set_name, number, rarity, owner_id, attributes) "
                   "VALUES ('Black Lotus', 'Alpha', '232', 'legendary', %s, %s)",
                   (seller, json.dumps({"grade": 9.5})), "cards")
        card2 = one("INSERT INTO cards (name, set_name, number, rarity, owner_id) "
                    "VALUES ('Mox Pearl', 'Alpha', '263', 'rare', %s)", (buyer,), "cards")
        history = one("INSERT INTO card_history (card_id, to_user_id, reason) "
                      "VALUES (%s, %s, 'issue')", (card, seller), "card_history")
        one("INSERT INTO card_valuations (card_id, value_cents, source) "
            "VALUES (%s, 1000000, 'appraisal')", (card,), "card_valuations")
        account = one("INSERT INTO ledger_accounts (user_id, kind) VALUES (%s, 'user_available')",
                      (buyer,), "ledger_accounts")
        deposits = conn.execute(
            "SELECT id FROM ledger_accounts WHERE kind = 'external_deposits'").fetchone()
        assert deposits is not None
        tx = one("INSERT INTO ledger_transactions (kind) VALUES ('deposit')", (),
                 "ledger_transactions")
        one("INSERT INTO ledger_entries (transaction_id, account_id, amount_cents) "
            "VALUES (%s, %s, 5000)", (tx, account), "ledger_entries")
        one("INSERT INTO ledger_entries (transaction_id, account_id, amount_cents) "
            "VALUES (%s, %s, -5000)", (tx, deposits[0]), "ledger_entries")
        keys["ledger_accounts"].add(str(deposits[0]))  # its balance moved: an update
        listing = one("INSERT INTO listings (card_id, seller_id, price_cents) "
                      "VALUES (%s, %s, 4200)", (card, seller), "listings")
        one("INSERT INTO sales (listing_id, card_id, buyer_id, seller_id, price_cents, "
            "fee_cents) VALUES (%s, %s, %s, %s, 4200, 105)",
            (listing, card, buyer, seller), "sales")
        offer = one("INSERT INTO trade_offers (from_user_id, to_user_id, message, expires_at) "
                    "VALUES (%s, %s, 'swap?', now() + interval '1 day')",
                    (seller, buyer), "trade_offers")
        conn.execute("INSERT INTO trade_offer_cards (offer_id, card_id, side) "
                     "VALUES (%s, %s, 'offered'), (%s, %s, 'requested')",
                     (offer, card, offer, card2))
        keys["trade_offer_cards"].add(offer)  # composite key: matched on offer_id
        auction = one("INSERT INTO auctions (card_id, seller_id, start_price_cents, starts_at, "
                      "ends_at) VALUES (%s, %s, 100, now(), now() + interval '1 hour')",
                      (card2, buyer), "auctions")
        one("INSERT INTO bids (auction_id, bidder_id, amount_cents) VALUES (%s, %s, 150)",
            (auction, seller), "bids")
        nft = one("INSERT INTO nfts (card_id) VALUES (%s)", (card,), "nfts")
        # Already 'failed': a made-up row the chain workers must never try to send
        # (the NFT tests wait for every open nft_transaction to settle).
        one("INSERT INTO nft_transactions (nft_id, kind, to_address, card_history_id, status) "
            "VALUES (%s, 'mint', %s, %s, 'failed')", (nft, secrets.token_hex(16), history),
            "nft_transactions")
        conn.execute("INSERT INTO notification_counters (user_id, last_seq) VALUES (%s, 1)",
                     (buyer,))
        one("INSERT INTO notifications (user_id, seq, kind, payload, source_event_id) "
            "VALUES (%s, 1, 'listing_sold', %s, %s)",
            (buyer, json.dumps({"listing_id": listing}), secrets.token_hex(8)), "notifications")
        conn.execute("INSERT INTO watchlists (user_id, card_id) VALUES (%s, %s)", (buyer, card2))
        keys["watchlists"].add(card2)
        one("INSERT INTO price_alerts (user_id, max_price_cents, rarity) VALUES (%s, 500, 'rare')",
            (buyer,), "price_alerts")
        one("INSERT INTO audit_events (action, entity, entity_id, at, prev_hash, hash) "
            "VALUES ('test', 'card', %s, now(), %s, %s)",
            (card, "0" * 64, secrets.token_hex(32)), "audit_events")
    # A few updates, so `before` images are validated too.
    conn.execute("UPDATE cards SET status = 'listed' WHERE id = %s", (card,))
    conn.execute("UPDATE nfts SET status = 'minted', mint_address = %s, owner_address = %s "
                 "WHERE id = %s", (secrets.token_hex(16), secrets.token_hex(16), nft))
    conn.execute("UPDATE notifications SET read_at = now() WHERE user_id = %s", (buyer,))
    return keys


# --- contract ----------------------------------------------------------------


def test_insert_update_delete_reach_the_topic_in_order(db: psycopg.Connection,
                                                       settings: Settings) -> None:
    user = insert_user(db)
    db.execute("UPDATE users SET role = 'admin' WHERE id = %s", (user,))
    db.execute("DELETE FROM users WHERE id = %s", (user,))

    def done(records: list[Record]) -> bool:
        mine = [r for r in records if r.key == {"id": user}]
        return len(mine) >= 4

    mine = [r for r in read_topic(settings, "users", done) if r.key == {"id": user}]
    ops = [r.value["op"] if r.value else None for r in mine]
    assert ops == ["c", "u", "d", None], ops  # a delete is followed by its tombstone
    created, updated, deleted = (r.value for r in mine[:3])
    assert created and updated and deleted
    assert created["before"] is None and created["after"]["id"] == user
    assert updated["before"]["role"] == "user" and updated["after"]["role"] == "admin"
    assert deleted["after"] is None and deleted["before"]["email"] == created["after"]["email"]
    lsns = [v["source"]["lsn"] for v in (created, updated, deleted)]
    assert lsns == sorted(lsns) and len(set(lsns)) == 3
    for value in (created, updated, deleted):
        source = value["source"]
        assert source["table"] == "users" and source["schema"] == "public"
        assert isinstance(source["txId"], int) and isinstance(source["ts_ms"], int)
        assert isinstance(value["ts_ms"], int)
    for record in mine:
        assert record.raw is None or b"password_hash" not in record.raw
        assert record.raw is None or b"SECRET-HASH" not in record.raw


def test_every_table_matches_its_json_schema(db: psycopg.Connection,
                                             settings: Settings) -> None:
    written = write_every_table(db)
    for table in CAPTURED_TABLES:
        wanted = written[table]
        assert wanted, f"the test wrote nothing to {table}"
        field = {"trade_offer_cards": "offer_id", "watchlists": "card_id"}.get(table, "id")
        records = read_topic(settings, table, has_keys(wanted, field))
        # Only the rows this test committed: other tests share the broker and inject
        # hand-made events into these topics to exercise their dead-letter paths.
        records = [r for r in records if r.key and str(r.key.get(field)) in wanted]
        value_check, key_check = validator(table), validator(table, key=True)
        for record in records:
            assert record.key is not None
            key_check.validate(record.key)
            if record.value is not None:
                value_check.validate(record.value)
                assert record.value["source"]["table"] == table
        if table == "users":
            assert all(b"password_hash" not in (r.raw or b"") for r in records)


def test_checked_in_schemas_match_the_migrated_database(db: psycopg.Connection) -> None:
    stale = [table for table in CAPTURED_TABLES
             if render(table_schema(db, table)) != schema_path(table).read_text()]
    assert not stale, (f"topic schemas out of date for {stale}: run "
                       "`uv run python -m streaming.topics.generate` against a migrated database")


# --- resilience ----------------------------------------------------------------


def test_sigkill_mid_stream_loses_nothing(db: psycopg.Connection, settings: Settings,
                                          cdc: Part) -> None:
    """A writer commits rows while the runner is SIGKILLed and restarted: all arrive."""
    user = insert_user(db)
    committed: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            for i in range(400):
                if stop.is_set():
                    return
                row = conn.execute(
                    "INSERT INTO notifications (user_id, seq, kind, source_event_id) "
                    "VALUES (%s, %s, 'card_received', %s) RETURNING id",
                    (user, i + 1, f"crash-{i}"),
                ).fetchone()
                assert row is not None
                committed.append(str(row[0]))
                time.sleep(0.01)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(committed) < 100:
            assert thread.is_alive(), "the writer died before the kill (see its traceback)"
            time.sleep(0.01)
        assert cdc.process is not None and cdc.process.proc is not None
        os.killpg(cdc.process.proc.pid, signal.SIGKILL)  # the runner and its JVM, at once
        cdc.process.proc.wait(10)
        killed_at = len(committed)
        cdc.stop()
        cdc.start()  # ready = streaming again (resumed from the JDBC offsets + slot)
    except BaseException:
        stop.set()  # the test failed: don't leave the writer running
        raise
    finally:
        # On success the writer finishes all 400 rows, some after the restart,
        # however quickly the runner came back.
        thread.join(60)
    assert len(committed) == 400 and killed_at < 400
    expected = set(committed)
    records = read_topic(settings, "notifications",
                         lambda rs: expected <= ids_in(rs), timeout=60)
    seen = ids_in(records)
    assert expected <= seen, f"lost {len(expected - seen)} of {len(expected)} committed rows"


# The broker-restart tests run on a private stack: restarting the session's broker
# would pull the rug from under every other part's consumers (Flink, landing, ...).


@pytest.fixture(scope="module")
def private() -> Iterator[Platform]:
    data_dir = Path(tempfile.mkdtemp(prefix="ece-test-cdc-"))
    data_dir.chmod(0o755)
    pg = free_port()
    overrides: dict[str, Any] = {
        "env": "test", "data_dir": data_dir,
        "database_url": f"postgresql://ece_app@127.0.0.1:{pg}/ece",
        "lake_catalog": f"dbname=ece_lake host=127.0.0.1 port={pg} user=ece_etl",
        "kafka_bootstrap": f"127.0.0.1:{free_port()}",
    }
    own = Settings(**overrides)
    plat = Platform(own, progress=lambda msg: print(f"[private stack] {msg}", flush=True))
    try:
        plat.require("cdc")
        yield plat
    finally:
        plat.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_new_broker_epoch_resnapshots_existing_rows(private: Platform) -> None:
    """A restarted in-memory broker is empty: CDC refills it with op 'r', then streams on."""
    settings, cdc, broker = private.settings, private.part("cdc"), private.part("broker")
    with psycopg.connect(settings.database_url, autocommit=True) as db:
        existing = {insert_user(db) for _ in range(3)}
        old_epoch = cluster_id(settings.kafka_bootstrap)
        cdc.stop()
        broker.stop()
        broker.start()
        new_epoch = cluster_id(settings.kafka_bootstrap)
        assert new_epoch != old_epoch
        cdc.start()  # ready = streaming into *this* broker, i.e. after the snapshot
        # The runner's own state is CDC's: the app role may not read it.
        with psycopg.connect(settings.role_url(CDC), autocommit=True) as cdc_db:
            stored = cdc_db.execute(f"SELECT cluster_id FROM {STATE_SCHEMA}.{STATE_TABLE} "
                                    "WHERE engine = %s", (ENGINE_NAME,)).fetchone()
        assert stored == (new_epoch,)
        after = insert_user(db)
    records = read_topic(settings, "users",
                         lambda rs: (existing | {after}) <= ids_in(rs), timeout=60)
    snapshot = {r.key["id"] for r in records if r.value and r.value["op"] == "r" and r.key}
    assert existing <= snapshot
    assert any(r.value and r.value["op"] == "c" and r.key == {"id": after} for r in records)


def test_broker_restart_under_a_running_runner(private: Platform) -> None:
    """The runner notices the new cluster id by itself and re-snapshots into it."""
    settings, cdc, broker = private.settings, private.part("cdc"), private.part("broker")
    with psycopg.connect(settings.database_url, autocommit=True) as db:
        existing = {str(r[0]) for r in db.execute("SELECT id FROM users").fetchall()}
    assert existing
    broker.stop()
    broker.start()
    epoch = cluster_id(settings.kafka_bootstrap)
    deadline = time.monotonic() + 60
    while not ((status := read_status(settings)) and status.cluster_id == epoch
               and status.state == "streaming"):
        assert time.monotonic() < deadline, f"runner did not refill the new broker: {status}"
        time.sleep(0.2)
    records = read_topic(settings, "users", lambda rs: existing <= ids_in(rs), timeout=30)
    assert existing <= {r.key["id"] for r in records if r.value and r.value["op"] == "r" and r.key}
    ok, detail = cdc.health()
    assert cdc.process is not None and cdc.process.alive, detail
    assert epoch == cluster_id(settings.kafka_bootstrap)
