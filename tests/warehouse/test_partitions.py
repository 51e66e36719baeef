"""Daily gold partitions against the real lake: rebuilds, backfills, schedule, sensor, freshness.

Three UTC days of market activity go through the real broker into bronze; silver
is built, then gold partition by partition. What an operator relies on: a
rebuilt partition equals the first build, no date ever appears twice (also with
two writers at once, and after a backfill killed with SIGKILL and rerun), and
``ece warehouse backfill`` says what it does and refuses bad ranges with exit 2.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
from cdcfeed import Feed, card_row
from dagster import (
    AssetMaterialization,
    AssetSelection,
    DagsterInstance,
    Definitions,
    RunRequest,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    define_asset_job,
)
from typer.testing import CliRunner

from ece.settings import REPO_ROOT, Settings
from ops.cli.warehouse import warehouse_app
from orchestration.assets.gold_partitions import GOLD_ASSETS
from orchestration.freshness import FRESHNESS_CHECKS
from orchestration.resources import resources_for
from orchestration.schedules import nightly_refresh
from orchestration.sensors import WITNESS, cdc_events_sensor
from warehouse.bronze import LandingConfig, land
from warehouse.lake import connect, table_exists
from warehouse.partitions import build_days
from warehouse.sql import build, models

TABLES = ("cards", "sales", "listings", "auctions", "bids", "trade_offers", "card_history",
          "ledger_accounts", "ledger_transactions", "ledger_entries")
DAYS = (date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3))
KEYS = {"daily_market_summary": "date", "card_price_daily": "card_id, date",
        "user_activity_daily": "user_id, date", "financial_report_daily": "date",
        "market_trends": "date, rarity, set_name", "portfolio_value_daily": "user_id, date"}


def _id() -> str:
    return str(uuid.uuid4())


def _market(feed: Feed) -> None:
    """A few sales, listings, bids, auctions, trades, transfers and deposits per day."""
    for table in TABLES:
        feed.create_topic(table, 1)
    users = [_id() for _ in range(4)]
    cards = [_id() for _ in range(3)]
    for i, card in enumerate(cards):
        feed.change("cards", "c", card_row(card, i + 1, rarity=("rare", "common")[i % 2]))
        feed.change("card_history", "c", {"id": _id(), "card_id": card, "from_user_id": None,
                                          "to_user_id": users[i], "reason": "mint",
                                          "reference_id": None, "at": "2026-02-20T00:00:00Z"})
    ext, acct = _id(), _id()
    for account, user, kind in ((ext, None, "external_deposits"),
                                (acct, users[0], "user_available")):
        feed.change("ledger_accounts", "c", {"id": account, "user_id": user, "kind": kind,
                                             "balance_cents": 0,
                                             "created_at": "2026-01-01T00:00:00Z"})
    for n, day in enumerate(DAYS):
        for k in range(3):
            at = f"{day.isoformat()}T{10 + k:02d}:00:00Z"
            card, buyer, seller = cards[k], users[(n + k + 1) % 4], users[(n + k) % 4]
            price = 1000 + 100 * n + 10 * k
            feed.change("sales", "c", {"id": _id(), "listing_id": _id(), "card_id": card,
                                       "buyer_id": buyer, "seller_id": seller,
                                       "price_cents": price, "fee_cents": price // 20,
                                       "created_at": at})
            feed.change("card_history", "c", {"id": _id(), "card_id": card,
                                              "from_user_id": seller, "to_user_id": buyer,
                                              "reason": "sale", "reference_id": None, "at": at})
            feed.change("listings", "c", {"id": _id(), "card_id": card, "seller_id": seller,
                                          "price_cents": price, "status": "sold",
                                          "created_at": at, "updated_at": at})
        feed.change("bids", "c", {"id": _id(), "auction_id": _id(), "bidder_id": users[n],
                                  "amount_cents": 500, "created_at": f"{day}T09:00:00Z"})
        feed.change("auctions", "c", {
            "id": _id(), "card_id": cards[0], "seller_id": users[1], "start_price_cents": 100,
            "reserve_price_cents": None, "min_increment_cents": 100, "current_bid_cents": 500,
            "current_bidder_id": users[n], "bid_count": 1, "starts_at": "2026-02-28T00:00:00Z",
            "ends_at": f"{day}T20:00:00Z", "status": "ended", "result": "sold",
            "created_at": "2026-02-28T00:00:00Z", "updated_at": f"{day}T20:00:01Z"})
        feed.change("trade_offers", "c", {
            "id": _id(), "from_user_id": users[0], "to_user_id": users[2], "message": None,
            "status": "accepted", "expires_at": "2026-04-01T00:00:00Z",
            "created_at": f"{day}T08:00:00Z", "updated_at": f"{day}T08:30:00Z"})
        tx = _id()
        feed.change("ledger_transactions", "c", {"id": tx, "kind": "deposit",
                                                 "reference_id": None,
                                                 "created_at": f"{day}T07:00:00Z"})
        for account, cents in ((acct, 5000), (ext, -5000)):
            feed.change("ledger_entries", "c", {"id": _id(), "transaction_id": tx,
                                                "account_id": account, "amount_cents": cents,
                                                "created_at": f"{day}T07:00:00Z"})
    feed.flush()


def _silver(con: duckdb.DuckDBPyConnection, landing: LandingConfig) -> None:
    land(con, landing, list(TABLES))
    for m in models("silver"):
        if all(table_exists(con, lay, tab) for lay, tab in m.upstream):
            build(con, m)


def _gold(con: duckdb.DuckDBPyConnection, catalog: str, days: tuple[date, ...]) -> None:
    for m in models("gold"):  # card_price_daily before portfolio_value_daily (alphabetical)
        for day in days:
            build_days(con, m, day, day, catalog)


def _snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    return {t: con.execute(f"SELECT * FROM ece.gold.{t} ORDER BY ALL").fetchall() for t in KEYS}


def _duplicates(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    found = {}
    for table, key in KEYS.items():
        row = con.execute(f"SELECT count(*) - count(DISTINCT ({key})) FROM ece.gold.{table}"
                          ).fetchone()
        found[table] = int(row[0]) if row else -1
    return found


def test_rebuilt_partition_is_identical_and_no_date_twice(
        lake_settings: Settings, feed: Feed, landing: LandingConfig) -> None:
    _market(feed)
    con = connect(lake_settings)
    _silver(con, landing)
    catalog = lake_settings.lake_catalog
    _gold(con, catalog, DAYS)
    first = _snapshot(con)
    assert [r[0] for r in first["daily_market_summary"]] == list(DAYS)
    assert [r[1] for r in first["daily_market_summary"]] == [3, 3, 3]  # sales per day
    assert len(first["card_price_daily"]) == 9 and len(first["portfolio_value_daily"]) >= 3

    # one day again, then all of them again, then the range in one transaction
    for m in models("gold"):
        build_days(con, m, DAYS[1], DAYS[1], catalog)
    assert _snapshot(con) == first
    _gold(con, catalog, DAYS)
    for m in models("gold"):
        build_days(con, m, DAYS[0], DAYS[-1], catalog)
    assert _snapshot(con) == first
    assert set(_duplicates(con).values()) == {0}

    # a partition only touches its own date: a wrong row of day 0 survives day 1's build
    con.execute("UPDATE ece.gold.daily_market_summary SET sales = 99 WHERE date = ?", [DAYS[0]])
    for m in models("gold"):
        build_days(con, m, DAYS[1], DAYS[1], catalog)
    assert con.execute("SELECT sales FROM ece.gold.daily_market_summary WHERE date = ?",
                       [DAYS[0]]).fetchall() == [(99,)]
    for m in models("gold"):
        build_days(con, m, DAYS[0], DAYS[0], catalog)
    assert _snapshot(con) == first

    # rolling: day 3's 7-day average covers the three days of its rarity and set
    trends = con.execute("SELECT rarity, sales, avg_price_7d_cents FROM ece.gold.market_trends "
                         "WHERE date = ? ORDER BY rarity", [DAYS[2]]).fetchall()
    # rare = cards 0 and 2: prices day n: 1000+100n and 1020+100n
    assert trends == [("common", 1, round((1010 + 1110 + 1210) / 3)),
                      ("rare", 2, round((2020 + 2220 + 2420) / 6))]


def test_two_writers_of_one_partition_never_double_it(
        lake_settings: Settings, feed: Feed, landing: LandingConfig) -> None:
    _market(feed)
    con = connect(lake_settings)
    _silver(con, landing)
    catalog = lake_settings.lake_catalog
    errors: list[BaseException] = []

    def writer() -> None:
        mine = connect(lake_settings)
        try:
            for _ in range(3):
                for m in models("gold"):
                    build_days(mine, m, DAYS[0], DAYS[-1], catalog)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            mine.close()

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert set(_duplicates(con).values()) == {0}
    snapshot = _snapshot(con)
    _gold(con, catalog, DAYS)
    assert _snapshot(con) == snapshot


def _backfill(*args: str, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "from ops.cli.warehouse import warehouse_app; warehouse_app()",
         "backfill", *args], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=os.environ.copy(), **kw)


def test_backfill_cli_progress_errors_and_kill_9(
        lake_settings: Settings, feed: Feed, landing: LandingConfig) -> None:
    _market(feed)
    con = connect(lake_settings)
    _silver(con, landing)
    runner = CliRunner()
    today = datetime.now(UTC).date()

    for args, why in (
        (["--from", "2026-03-02", "--to", "2026-03-01"], "reversed"),
        (["--from", today.isoformat(), "--to", (today + timedelta(days=1)).isoformat()],
         "in the future"),
        (["--from", "2024-01-01", "--to", "2026-03-01"], "over two years"),
        (["--from", "yesterday", "--to", "2026-03-01"], "not a date"),
    ):
        refused = runner.invoke(warehouse_app, ["backfill", *args, "--no-record"])
        assert refused.exit_code == 2, refused.output
        assert "error" in refused.output and why in refused.output, refused.output

    done = runner.invoke(warehouse_app, ["backfill", "--from", "2026-02-01", "--to",
                                         "2026-03-03", "--no-record"])
    assert done.exit_code == 0, done.output
    assert "backfill gold 2026-02-01 .. 2026-03-03 (31 days)" in done.output
    assert "backfill succeeded" in done.output and "31 days" in done.output
    first = _snapshot(con)
    assert [r[0] for r in first["daily_market_summary"]] == list(DAYS)
    assert min(r[1] for r in first["portfolio_value_daily"]) == date(2026, 2, 20)  # the mints

    # kill -9 in the middle of the same backfill, then rerun it
    proc = _backfill("--from", "2026-02-01", "--to", "2026-03-03", "--no-record",
                     start_new_session=True)
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "ece.gold.card_price_daily 2026-02-10" in line:
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, "".join(lines)
    assert any("ece.gold.card_price_daily 2026-02-01: 0 rows (1/31)" in ln for ln in lines), \
        "".join(lines)  # one progress line per date and mart
    rerun = _backfill("--from", "2026-02-01", "--to", "2026-03-03", "--no-record")
    out, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out
    assert _snapshot(con) == first
    assert set(_duplicates(con).values()) == {0}


def test_schedule_builds_yesterday_and_sensor_keeps_today(
        lake_settings: Settings, feed: Feed) -> None:
    context = build_schedule_context(
        scheduled_execution_time=datetime(2026, 3, 2, 0, 15, tzinfo=UTC))
    request = nightly_refresh(context)
    assert isinstance(request, RunRequest)
    assert request.partition_key == "2026-03-01" and request.run_key == "nightly-2026-03-01"

    resources = resources_for(lake_settings)
    instance = DagsterInstance.ephemeral()
    today = datetime.now(UTC).date().isoformat()

    def evaluate() -> RunRequest | SkipReason:
        return cdc_events_sensor(  # type: ignore[return-value]
            build_sensor_context(instance=instance, resources=resources))

    # today's partitions never built (a new day): the sensor asks for them
    first = evaluate()
    assert isinstance(first, RunRequest) and first.partition_key == today
    instance.report_runless_asset_event(AssetMaterialization(WITNESS, partition=today))
    assert isinstance(evaluate(), SkipReason)  # built just now, nothing waiting
    feed.create_topic("cards", 1)
    feed.change("cards", "c", card_row(_id(), 1))
    feed.flush()
    waiting = evaluate()
    assert isinstance(waiting, RunRequest) and waiting.partition_key == today
    assert waiting.tags["ece/pending"] == "1"


def test_freshness_checks_flag_a_stale_today(lake_settings: Settings) -> None:
    from orchestration.definitions import build_definitions

    defs = build_definitions()
    checks = {k.to_user_string() for k in defs.resolve_asset_graph().asset_check_keys}
    gold = {a.key.to_user_string() for a in GOLD_ASSETS}
    assert {f"{g}:freshness_check" for g in gold} <= checks
    assert gold == {f"gold/{t}" for t in KEYS}
    assert defs.resolve_sensor_def("gold_freshness_sensor")
    for a in GOLD_ASSETS:
        assert a.partitions_def is not None and a.partitions_def.get_last_partition_key() \
            == datetime.now(UTC).date().isoformat()

    instance = DagsterInstance.ephemeral()
    job = Definitions(
        assets=GOLD_ASSETS, asset_checks=FRESHNESS_CHECKS, resources=resources_for(lake_settings),
        jobs=[define_asset_job("freshness", selection=AssetSelection.checks(*FRESHNESS_CHECKS))],
    ).resolve_job_def("freshness")

    def outcomes() -> dict[str, bool]:
        result = job.execute_in_process(instance=instance)
        return {e.asset_key.path[-1]: e.passed for e in result.get_asset_check_evaluations()}

    assert outcomes() == {t: False for t in KEYS}  # never built: today's partition is stale
    today = datetime.now(UTC).date().isoformat()
    for a in GOLD_ASSETS:
        instance.report_runless_asset_event(AssetMaterialization(a.key, partition=today))
    assert outcomes() == {t: True for t in KEYS}  # built just now
