"""The lakehouse reports against the real lake, broker, API and Dagster.

Two UTC days of market activity go through the real broker into bronze, silver
and the gold partitions; ``ece warehouse report`` then writes each report, and a
reader of the page or of the CSV must see exactly the gold rows of that date.
The system health report reads the real API's /metrics, the lake's check results
and dead letters landed by the real bronze landing; a source that does not
answer is said so. The Dagster asset shows the chart in its metadata.
"""

from __future__ import annotations

import base64
import csv
import io
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import httpx
from cdcfeed import Feed, card_row
from dagster import (
    DagsterInstance,
    Definitions,
    build_schedule_context,
    define_asset_job,
    materialize,
)
from PIL import Image
from typer.testing import CliRunner

from ece.settings import Settings
from ops.cli.warehouse import warehouse_app
from ops.stack.base import free_port
from orchestration.assets.reports import REPORT_ASSETS, nightly_reports
from orchestration.jobs import refresh_job
from orchestration.resources import resources_for
from orchestration.schedules import NIGHTLY_CRON
from quality.results import record
from quality.suite import CheckOutcome
from warehouse.bronze import LandingConfig, land
from warehouse.lake import connect, table_exists
from warehouse.partitions import build_days
from warehouse.reports.builder import build_reports
from warehouse.reports.model import cell
from warehouse.sql import build, models

TABLES = ("cards", "sales", "listings", "bids", "auctions", "trade_offers", "ledger_accounts",
          "ledger_transactions", "ledger_entries", "card_history")
D, D_NEXT, EMPTY = date(2026, 3, 1), date(2026, 3, 2), date(2026, 2, 10)
PNG = b"\x89PNG\r\n\x1a\n"


def _id() -> str:
    return str(uuid.uuid4())


def _market(feed: Feed) -> None:
    """Three sales, listings, a bid, a trade and a deposit on D; one sale on D_NEXT."""
    for table in TABLES:
        feed.create_topic(table, 1)
    users = [_id() for _ in range(3)]
    cards = [_id() for _ in range(2)]
    for i, card in enumerate(cards):
        feed.change("cards", "c", card_row(card, 1, rarity=("rare", "common")[i]))
        feed.change("card_history", "c", {"id": _id(), "card_id": card, "from_user_id": None,
                                          "to_user_id": users[i], "reason": "mint",
                                          "reference_id": None, "at": "2026-02-20T00:00:00Z"})
    for n, (card, buyer, seller, price, at) in enumerate((
            (cards[0], users[1], users[0], 1000, "2026-03-01T10:00:00Z"),
            (cards[1], users[2], users[1], 2500, "2026-03-01T11:00:00Z"),
            (cards[0], users[2], users[1], 1200, "2026-03-01T12:00:00Z"),
            (cards[1], users[0], users[2], 9000, "2026-03-02T10:00:00Z"))):
        feed.change("sales", "c", {"id": _id(), "listing_id": _id(), "card_id": card,
                                   "buyer_id": buyer, "seller_id": seller, "price_cents": price,
                                   "fee_cents": price // 40, "created_at": at})
        feed.change("card_history", "c", {"id": _id(), "card_id": card, "from_user_id": seller,
                                          "to_user_id": buyer, "reason": "sale",
                                          "reference_id": None, "at": at})
        feed.change("listings", "c", {"id": _id(), "card_id": card, "seller_id": seller,
                                      "price_cents": price, "status": "sold",
                                      "created_at": at, "updated_at": at})
        if n == 0:
            feed.change("bids", "c", {"id": _id(), "auction_id": _id(), "bidder_id": users[0],
                                      "amount_cents": 500, "created_at": at})
    feed.change("auctions", "c", {  # ends on D_NEXT: no auction ended on D
        "id": _id(), "card_id": cards[0], "seller_id": users[2], "start_price_cents": 100,
        "reserve_price_cents": None, "min_increment_cents": 100, "current_bid_cents": 500,
        "current_bidder_id": users[0], "bid_count": 1, "starts_at": "2026-03-01T00:00:00Z",
        "ends_at": "2026-03-02T20:00:00Z", "status": "ended", "result": "sold",
        "created_at": "2026-03-01T00:00:00Z", "updated_at": "2026-03-02T20:00:01Z"})
    feed.change("trade_offers", "c", {
        "id": _id(), "from_user_id": users[0], "to_user_id": users[2], "message": None,
        "status": "accepted", "expires_at": "2026-04-01T00:00:00Z",
        "created_at": "2026-03-01T08:00:00Z", "updated_at": "2026-03-01T08:30:00Z"})
    ext, acct, tx = _id(), _id(), _id()
    for account, user, kind in ((ext, None, "external_deposits"),
                                (acct, users[0], "user_available")):
        feed.change("ledger_accounts", "c", {"id": account, "user_id": user, "kind": kind,
                                             "balance_cents": 0,
                                             "created_at": "2026-01-01T00:00:00Z"})
    feed.change("ledger_transactions", "c", {"id": tx, "kind": "deposit", "reference_id": None,
                                             "created_at": "2026-03-01T07:00:00Z"})
    for account, cents in ((acct, 7000), (ext, -7000)):
        feed.change("ledger_entries", "c", {"id": _id(), "transaction_id": tx,
                                            "account_id": account, "amount_cents": cents,
                                            "created_at": "2026-03-01T07:00:00Z"})
    feed.flush()


def _build_lake(settings: Settings, landing: LandingConfig) -> duckdb.DuckDBPyConnection:
    """Land, build silver, then the gold partitions from EMPTY to D_NEXT (as a backfill)."""
    con = connect(settings)
    land(con, landing, list(TABLES))
    for m in models("silver"):
        if all(table_exists(con, lay, tab) for lay, tab in m.upstream):
            build(con, m)
    for m in models("gold"):  # card_price_daily before portfolio_value_daily
        build_days(con, m, EMPTY, D_NEXT, settings.lake_catalog)
    return con


class _Tables(HTMLParser):
    """The text of every table cell of a page, table by table, row by row."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _page_tables(page: str) -> list[list[list[str]]]:
    parser = _Tables()
    parser.feed(page)
    return parser.tables


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def _pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def _assert_real_png(png: bytes) -> None:
    assert png.startswith(PNG)
    image = Image.open(io.BytesIO(png))
    image.verify()  # raises on a truncated or corrupt file
    assert image.format == "PNG" and image.size[0] >= 300 and image.size[1] >= 150


def _gold(con: duckdb.DuckDBPyConnection, mart: str, day: date
          ) -> tuple[list[str], list[tuple[Any, ...]]]:
    cursor = con.execute(f"SELECT * FROM ece.gold.{mart} WHERE date = ?", [day])
    return [d[0] for d in cursor.description or []], [tuple(r) for r in cursor.fetchall()]


def _assert_section_equals_gold(con: duckdb.DuckDBPyConnection, folder: Path, mart: str,
                                key_columns: int) -> None:
    """The CSV's rows of the mart and the page's table are the mart's rows of D, no more."""
    columns, rows = _gold(con, mart, D)
    assert rows, f"gold.{mart} has no row for {D}: the test data is wrong"
    expected = {("|".join(cell(v) for v in row[:key_columns]), c, cell(v))
                for row in rows for c, v in zip(columns[key_columns:], row[key_columns:],
                                                strict=True)}
    found = {(r["row"], r["column"], r["value"]) for r in _csv(folder / f"{D}.csv")
             if r["section"] == f"gold.{mart}"}
    assert found == expected
    page_rows = [tuple(cell(v) for v in row) for row in rows]
    tables = _page_tables((folder / f"{D}.html").read_text())
    if len(rows) == 1 and len(columns) > 3:  # one row: printed one figure a line
        assert [list(p) for p in zip(columns, page_rows[0], strict=True)] in tables
    else:
        matching = [t for t in tables if t and t[0] == columns]
        assert len(matching) == 1 and sorted(map(tuple, matching[0][1:])) == sorted(page_rows)


def test_gold_reports_equal_the_marts_of_the_date(lake_settings: Settings, feed: Feed,
                                                 landing: LandingConfig) -> None:
    _market(feed)
    con = _build_lake(lake_settings, landing)
    runner = CliRunner()
    done = runner.invoke(warehouse_app, ["report", "--date", D.isoformat(), "--no-record"])
    assert done.exit_code == 0, done.output
    assert f"report {D}" in done.output and "[market] building 2026-03-01" in done.output
    root = lake_settings.data_dir / "reports"

    # market: the summary row of D (hand-computed), and each mart's rows equal the lake's
    summary = {(r["column"]): r["value"] for r in _csv(root / "market" / f"{D}.csv")
               if r["section"] == "gold.daily_market_summary"}
    assert summary["sales"] == "3" and summary["volume_cents"] == str(1000 + 2500 + 1200)
    assert summary["fees_cents"] == str(25 + 62 + 30) and summary["trades_accepted"] == "1"
    for mart, keys in (("daily_market_summary", 1), ("card_price_daily", 2),
                       ("market_trends", 3)):
        _assert_section_equals_gold(con, root / "market", mart, keys)
    _assert_section_equals_gold(con, root / "user_activity", "user_activity_daily", 1)
    _assert_section_equals_gold(con, root / "user_activity", "portfolio_value_daily", 1)
    _assert_section_equals_gold(con, root / "financial", "financial_report_daily", 1)
    financial = {r["column"]: r["value"] for r in _csv(root / "financial" / f"{D}.csv")}
    assert financial["gross_volume_cents"] == "4700" and financial["deposits_cents"] == "7000"
    assert financial["ledger_balanced"] == "true"
    totals = {r["column"]: r["value"] for r in _csv(root / "user_activity" / f"{D}.csv")
              if r["section"] == "totals"}
    assert totals["active_users"] == "3" and totals["purchases"] == "3"
    assert totals["spent_cents"] == "4700" and totals["bids"] == "1"
    # D_NEXT's 9000-cent sale is in no report of D
    for name in ("market", "user_activity", "financial"):
        assert all(r["value"] not in ("9000", "225") for r in _csv(root / name / f"{D}.csv"))

    # every chart is a real PNG, and says where its figures come from
    for name, charts in (("market", 2), ("user_activity", 2), ("financial", 1)):
        page = (root / name / f"{D}.html").read_text()
        pngs = _pngs(page)
        assert len(pngs) == charts, name
        for png in pngs:
            _assert_real_png(png)
        assert page.count("Source: ece.gold.") >= charts

    # a date with no data says so: no chart, and a no_data line in the CSV
    empty = runner.invoke(warehouse_app, ["report", "--date", EMPTY.isoformat(), "--no-record"])
    assert empty.exit_code == 0, empty.output
    for name in ("market", "user_activity", "financial"):
        page = (root / name / f"{EMPTY}.html").read_text()
        assert f"No data for {EMPTY}" in page and "<img" not in page
        rows = _csv(root / name / f"{EMPTY}.csv")
        assert rows[0]["column"] == "no_data" and rows[0]["row"] == EMPTY.isoformat()

    # a bad date is refused with exit 2, and nothing is written for it
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    for arg, why in (("yesterday", "is not a date"), ("2026-13-01", "is not a date"),
                     (tomorrow, "is in the future")):
        refused = runner.invoke(warehouse_app, ["report", "--date", arg, "--no-record"])
        assert refused.exit_code == 2, refused.output
        assert "error" in refused.output and why in refused.output, refused.output
    assert not list(root.glob(f"*/{tomorrow}.*"))
    con.close()


def test_system_health_reads_metrics_checks_and_dead_letters(
        lake_settings: Settings, feed: Feed, landing: LandingConfig, live_url: str) -> None:
    # the real API answers a few requests, so its /metrics has counts and latencies
    with httpx.Client() as client:
        for _ in range(5):
            assert client.get(f"{live_url}/healthz").status_code == 200
    # two invalid CDC messages: the real landing dead-letters them (their `at` is now)
    feed.create_topic("cards", 1)
    feed.change("cards", "c", card_row(_id(), 1))
    for bad in (b"not json", b'{"op":"x"}'):
        feed.producer.produce(feed.topic("cards"), key=b'{"id":"x"}', value=bad)
    feed.flush()
    con = connect(lake_settings)
    assert land(con, landing, ["cards"])[0].invalid == 2
    # two runs of the real check-results writer: one check fails, then passes
    record(con, "run-1", "silver/cards", [CheckOutcome("id_unique", True, "0 duplicates"),
                                          CheckOutcome("rarity_in_set", False, "1 unexpected")])
    record(con, "run-2", "silver/cards", [CheckOutcome("rarity_in_set", True, "0 unexpected")])
    today = datetime.now(UTC).date()
    logged: list[str] = []
    health = build_reports(lake_settings, today, logged.append, ["system_health"])[0]
    report = health.report

    api = report.section("api.http").records()[0]
    assert api["requests"] >= 5
    assert api["error_rate"] == round(api["errors_5xx"] / api["requests"], 6)
    assert api["latency_p50_le_s"] is not None and api["latency_p99_le_s"] >= \
        api["latency_p50_le_s"]
    routes = {r["route"]: r["requests"] for r in report.section("api.routes").records()}
    assert routes.get(urlsplit(live_url).path + "/healthz", 0) >= 5, routes
    assert report.section("dlq").records() == [{"job": "bronze", "reason": "invalid",
                                                "letters": 2}]
    checks = report.section("quality.check_results").records()
    assert checks == [
        {"asset": "silver/cards", "check": "id_unique", "latest_success": True, "runs": 1,
         "failed_runs": 0, "latest_observed_value": "0 duplicates"},
        {"asset": "silver/cards", "check": "rarity_in_set", "latest_success": True, "runs": 2,
         "failed_runs": 1, "latest_observed_value": "0 unexpected"}]
    page = health.html_path.read_text()
    assert "Source: Prometheus metrics at GET http://" in page
    assert "Source: ece.quality.check_results" in page and "Source: Kafka topic" in page
    pngs = _pngs(page)
    assert len(pngs) >= 2  # API latency, quality checks
    for png in pngs:
        _assert_real_png(png)
    rows = _csv(health.csv_path)
    assert [(r["row"], r["column"], r["value"]) for r in rows if r["section"] == "dlq"] == [
        ("bronze|invalid", "letters", "2")]
    assert all(r["source"] for r in rows if r["section"] != "report")  # every figure says where

    # the lake's CDC lag of the day the feed's events were committed (2026-01-01)
    landed = build_reports(lake_settings, date(2026, 1, 1), logged.append, ["system_health"])
    [lag] = landed[0].report.section("cdc.bronze_lag").records()
    assert lag["table"] == "cards" and lag["events"] == 1 and lag["lag_p50_s"] > 0

    # the API and Flink unreachable: those figures say so, the others still render
    away = lake_settings.model_copy(update={"api_port": free_port(),
                                            "flink_rest_port": free_port()})
    down = build_reports(away, today, logged.append, ["system_health"])[0]
    page = down.html_path.read_text()
    assert page.count("Not available: the API did not answer") == 2
    assert "Not available: Flink did not answer" in page
    assert down.report.section("quality.check_results").has_rows
    assert any(r["section"] == "api.http" and r["column"] == "unavailable"
               for r in _csv(down.csv_path))
    con.close()


def test_dagster_report_asset_shows_the_chart(lake_settings: Settings, feed: Feed,
                                             landing: LandingConfig) -> None:
    _market(feed)
    _build_lake(lake_settings, landing).close()
    by_name = {a.key.path[-1]: a for a in REPORT_ASSETS}
    assert set(by_name) == {"market", "user_activity", "financial", "system_health"}
    result = materialize([by_name["financial"]], resources=resources_for(lake_settings),
                         instance=DagsterInstance.ephemeral(), partition_key=D.isoformat())
    assert result.success
    [event] = result.get_asset_materialization_events()
    mat = event.event_specific_data.materialization  # type: ignore[union-attr]
    assert mat.partition == D.isoformat()
    chart = mat.metadata["chart"].value
    uris = re.findall(r"!\[[^\]]*\]\(data:image/png;base64,([^)]+)\)", str(chart))
    assert len(uris) == 1
    _assert_real_png(base64.b64decode(uris[0]))
    html_path = Path(str(mat.metadata["html"].value))
    assert html_path == lake_settings.data_dir / "reports" / "financial" / f"{D}.html"
    assert html_path.exists() and html_path.with_suffix(".csv").exists()

    # the refresh job (every asset, each minute from the sensor) does not rebuild reports
    html_path.unlink()
    job = Definitions(assets=[by_name["financial"]], resources=resources_for(lake_settings),
                      jobs=[define_asset_job(refresh_job.name)]).resolve_job_def(refresh_job.name)
    skipped = job.execute_in_process(partition_key=D.isoformat(),
                                     instance=DagsterInstance.ephemeral())
    assert skipped.success and not skipped.get_asset_materialization_events()
    assert not html_path.exists()

    # nightly, after the nightly refresh, for yesterday's partition
    request = nightly_reports(build_schedule_context(
        scheduled_execution_time=datetime(2026, 3, 2, 0, 45, tzinfo=UTC)))
    assert request.partition_key == D.isoformat()  # type: ignore[union-attr]
    refresh_minute, refresh_hour = (int(x) for x in NIGHTLY_CRON.split()[:2])
    cron = nightly_reports.cron_schedule
    minute, hour = (int(x) for x in str(cron).split()[:2])
    assert (hour, minute) > (refresh_hour, refresh_minute)
