"""``ece check`` and the Dagster asset ``quality/consistency`` over the real stack.

Demo traffic goes through the real API into PostgreSQL, Debezium, Kafka, Flink
(Redis card cache, market hot set) and a fresh lake; then every store must agree,
also with rows committed after the last landing. Then one disagreement at a time
is planted in one store and ``ece check`` must exit 1 naming it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from dagster import DagsterInstance, materialize
from redis import Redis
from typer.testing import CliRunner

from ece.contracts import card_cache
from ece.contracts import market_data as md
from ece.settings import Settings, get_settings
from ops.cli import app
from ops.cli.demo import demo_app
from ops.demo.client import api_base
from tests.support.privatestack import private_platform

STACK_S = 120.0


def run_check(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """``ece check`` as an operator runs it: a fresh process with these settings."""
    return subprocess.run([sys.executable, "-m", "ops", "check", *args], capture_output=True,
                          text=True, timeout=300, check=False,
                          env={"PATH": "/usr/bin:/bin", "COLUMNS": "220",
                               **settings.as_environment()})


def verdicts(settings: Settings, *args: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Exit code, ``"<store> <what>" -> verdict`` and the JSON report."""
    done = run_check(settings, "--json", *args)
    assert done.stdout.strip(), done.stderr
    report = json.loads(done.stdout)
    return done.returncode, {f"{c['store']} {c['what']}": c["verdict"]
                             for c in report["comparisons"]}, report


def sql(settings: Settings, statement: str, *params: Any) -> Any:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        row = conn.execute(statement, params).fetchone()
        return row[0] if row else None


@pytest.fixture(scope="module")
def live() -> Iterator[Settings]:
    """A private stack (its own Postgres, Redis, broker, CDC, Flink, chain and lake: the
    check covers every row, so the session's shared stack, where other tests plant bad
    data on purpose, would not do) after demo traffic, refreshed once, and one card
    committed after that landing."""
    with private_platform("consistency", "api", "cdc", "flink", "solana") as own, \
            pytest.MonkeyPatch.context() as env:
        settings = own.settings
        for key, value in settings.as_environment().items():
            env.setenv(key, value)
        get_settings.cache_clear()
        try:
            demo = CliRunner().invoke(demo_app, ["--users", "4", "--cards", "8", "--minutes",
                                                 "0.3", "--seed", "11",
                                                 "--api", api_base(settings)])
            assert demo.exit_code == 0, demo.output
            _hot_set_ready(Redis.from_url(settings.redis_url))
            _refresh()
            _commit_after_landing(settings)
            yield settings
        finally:
            get_settings.cache_clear()


def _hot_set_ready(redis: Redis) -> None:
    deadline = time.monotonic() + STACK_S
    while redis.get(md.READY_KEY) is None:
        assert time.monotonic() < deadline, "the market hot set never became ready"
        time.sleep(0.5)


def _refresh() -> None:
    from ops.cli.warehouse import warehouse_app

    done = CliRunner().invoke(warehouse_app, ["refresh", "--no-record"])
    assert done.exit_code == 0, done.output


def _commit_after_landing(settings: Settings) -> str:
    """A card committed after the last landing: on the topic, not in the lake yet."""
    card_id = str(uuid.uuid4())
    owner = sql(settings, "SELECT id FROM users ORDER BY created_at LIMIT 1")
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO cards (id, name, set_name, number, rarity, owner_id) "
                     "VALUES (%s, 'Late Card', 'Consistency', '1', 'rare', %s)",
                     (card_id, owner))
    return card_id


@pytest.mark.timeout(1500)  # the first test pays for the stack and the demo traffic
def test_all_stores_agree(live: Settings) -> None:
    started = time.monotonic()
    done = run_check(live, "--settle", "10")
    seconds = time.monotonic() - started
    print(f"ece check on the demo data: {seconds:.2f}s wall\n{done.stdout}")
    assert done.returncode == 0, done.stdout + done.stderr
    for shown in ("silver.sales", "silver.ledger_entries", "bronze.cards", "card documents",
                  "card prices", "leaderboard traders", "minted NFT owners", "agree"):
        assert shown in done.stdout, shown
    assert "comparisons agree" in done.stdout
    code, rows, report = verdicts(live, "--only", "lake", "--only", "cards")
    assert code == 0 and report["ok"] is True and set(rows.values()) == {"agree"}, rows
    print(f"timings of --only lake --only cards: {report['timings']}")
    cards_row = next(c for c in report["comparisons"] if c["what"] == "bronze.cards")
    assert "on the topic" in cards_row["found"]  # the late card is pending, not missing

    # The Dagster asset: same comparisons, the report as metadata, the check passes.
    result = _materialize(live)
    evaluation = result.get_asset_check_evaluations()[0]
    meta = result.asset_materializations_for_node("quality__consistency")[0].metadata
    assert evaluation.check_name == "stores_agree" and evaluation.passed, meta
    assert meta["agree"].value is True and "silver.sales" in str(meta["report"].value)


def _materialize(settings: Settings) -> Any:
    from orchestration.assets.consistency import consistency
    from orchestration.resources import resources_for

    result = materialize([consistency], resources=resources_for(settings),
                         instance=DagsterInstance.ephemeral())
    assert result.success  # a disagreement fails the check, never the refresh run
    return result


def test_the_lake_lost_a_sale(live: Settings) -> None:
    from warehouse.lake import connect

    con = connect(live)
    try:
        sale = con.execute("SELECT CAST(id AS VARCHAR) FROM ece.silver.sales LIMIT 1").fetchone()
        assert sale is not None, "the demo made no sale"
        con.execute("DELETE FROM ece.silver.sales WHERE id = ?", [sale[0]])
    finally:
        con.close()
    done = run_check(live, "--only", "lake", "--settle", "1")
    assert done.returncode == 1, done.stdout
    assert "silver.sales" in done.stdout and sale[0] in done.stdout
    assert "lake silver.sales" in done.stdout.split("comparisons failed:")[1]
    evaluation = _materialize(live).get_asset_check_evaluations()[0]
    assert not evaluation.passed
    assert "silver.sales" in str(evaluation.metadata["failures"].value)


def test_a_committed_row_never_reached_bronze(live: Settings) -> None:
    from warehouse.lake import connect

    con = connect(live)
    try:  # the ledger entries of one transaction: landed, then lost by the lake
        entry = con.execute("SELECT id FROM ece.bronze.ledger_entries LIMIT 1").fetchone()
        assert entry is not None, "the demo wrote no ledger entry"
        con.execute("DELETE FROM ece.bronze.ledger_entries WHERE id = ?", [entry[0]])
    finally:
        con.close()
    code, rows, report = verdicts(live, "--only", "lake", "--settle", "1")
    assert code == 1 and rows["cdc bronze.ledger_entries"] == "disagree", rows
    assert entry[0] in json.dumps(report["comparisons"])
    assert rows["cdc bronze.users"] == "agree" and rows["cdc bronze.sales"] == "agree"


def test_a_card_document_that_is_not_the_row(live: Settings) -> None:
    redis = Redis.from_url(live.redis_url)
    cached = [k.decode().split(":")[2] for k in redis.scan_iter(match="ece:card:*")
              if k.decode().count(":") == 2]
    assert cached, "no card is cached"
    key = card_cache.document_key(cached[0])
    document, version = card_cache.decode_entry(redis.get(key) or b"")
    redis.set(key, card_cache.encode_entry({**document, "name": "Forged"}, version), keepttl=True)
    try:
        code, rows, report = verdicts(live, "--only", "cards", "--settle", "1")
        assert code == 1 and rows["redis card documents"] == "disagree", rows
        assert cached[0] in json.dumps(report) and "name" in json.dumps(report)
    finally:
        redis.delete(key)  # a missing document is no disagreement: the cache is partial
    code, rows, _ = verdicts(live, "--only", "cards")
    assert code == 0, rows


def test_a_leaderboard_score_no_sale_gives(live: Settings) -> None:
    # The writer recomputes every ranked trader from their own sales set every few
    # seconds, so the forged sale goes there too (a bare ZADD on the board would be
    # healed before anyone saw it).
    redis = Redis.from_url(live.redis_url)
    board, stranger = md.leaderboard_key("traders"), str(uuid.uuid4())
    forged = md.trader_sales_key(stranger)
    redis.zadd(forged, {md.sale_member(str(uuid.uuid4()), 4_242): int(time.time() * 1000)})
    redis.zadd(board, {stranger: 4_242})
    try:
        code, rows, report = verdicts(live, "--only", "market", "--settle", "1")
        assert code == 1 and rows["redis leaderboard traders"] == "disagree", rows
        assert stranger in json.dumps(report) and rows["redis card prices"] == "agree"
    finally:
        redis.delete(forged)
        redis.zrem(board, stranger)
    code, rows, _ = verdicts(live, "--only", "market")
    assert code == 0, rows


def test_minted_nft_owner_against_the_chain(live: Settings) -> None:
    """A real mint agrees; a mint address the chain never saw is named."""
    import asyncio

    from solana.rpc.async_api import AsyncClient
    from solders.keypair import Keypair

    from api.integrations.solana import mint_nft

    owner, payer, mint = Keypair(), Keypair(), Keypair()

    async def mint_one() -> None:
        async with AsyncClient(live.solana_rpc_url, timeout=10) as client:
            await client.request_airdrop(payer.pubkey(), 10**9)
            await mint_nft(client, payer, mint, owner.pubkey(), "Checked", "ECE",
                           "ar://" + "x" * 43)

    asyncio.run(mint_one())
    user_id, card_id, nft_id = (str(uuid.uuid4()) for _ in range(3))
    name = f"chk{uuid.uuid4().hex[:10]}"
    with psycopg.connect(live.database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO users (id, email, username, password_hash, custody_address) "
                     "VALUES (%s, %s, %s, 'x', %s)",
                     (user_id, f"{name}@example.com", name, str(owner.pubkey())))
        conn.execute("INSERT INTO cards (id, name, set_name, number, rarity, owner_id) "
                     "VALUES (%s, 'Chain Card', 'Consistency', '2', 'rare', %s)",
                     (card_id, user_id))
        conn.execute("INSERT INTO nfts (id, card_id, status, mint_address, owner_address, "
                     "metadata_uri) VALUES (%s, %s, 'minted', %s, %s, 'ar://test')",
                     (nft_id, card_id, str(mint.pubkey()), str(owner.pubkey())))
    code, rows, report = verdicts(live, "--only", "chain")
    assert code == 0 and rows["chain minted NFT owners"] == "agree", report
    elsewhere = str(Keypair().pubkey())
    sql(live, "UPDATE nfts SET mint_address = %s WHERE id = %s RETURNING id", elsewhere, nft_id)
    try:
        done = run_check(live, "--only", "chain")
        assert done.returncode == 1, done.stdout
        assert "minted NFT owners" in done.stdout and elsewhere in done.stdout
        assert "1 missing" in done.stdout
    finally:
        sql(live, "UPDATE nfts SET mint_address = %s WHERE id = %s RETURNING id",
            str(mint.pubkey()), nft_id)

    from orchestration.assets.consistency import chain_reconciliation
    from orchestration.resources import resources_for

    result = chain_reconciliation.execute_in_process(resources=resources_for(live))
    assert result.success
    [out] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    meta = out.event_specific_data.metadata  # type: ignore[union-attr]
    assert meta["verdict"].value == "agree" and meta["checked"].value >= 1


def test_an_unreachable_store_is_a_named_failure(live: Settings) -> None:
    dead = live.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    done = run_check(dead, "--only", "cards", "--only", "market")
    assert done.returncode == 1
    assert "redis unreachable" in done.stdout and "Traceback" not in done.stdout + done.stderr
    assert "unreachable" in done.stdout.split("comparisons failed:")[0]


def test_help_and_a_bad_option() -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["check", "--help"])
    assert shown.exit_code == 0 and "--json" in shown.output and "--only" in shown.output
    bad = runner.invoke(app, ["check", "--only", "moon"])
    assert bad.exit_code == 2 and "unknown --only moon" in bad.output
