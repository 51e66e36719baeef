"""Silver market tables and gold marts from hand-computed CDC events.

Two UTC days of activity are produced into the real broker as Debezium
envelopes, landed into bronze, and silver + gold (every daily partition up to
today, in one range) are rebuilt from the SQL files;
every number asserted below was computed by hand from the events.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import duckdb
from cdcfeed import Feed, card_row

from ece.settings import Settings
from orchestration.assets.gold_partitions import GOLD_START
from warehouse.bronze import LandingConfig, land
from warehouse.lake import connect, table_exists
from warehouse.partitions import build_days
from warehouse.sql import build, models

TABLES = ("cards", "listings", "sales", "bids", "auctions", "trade_offers", "card_history",
          "ledger_accounts", "ledger_transactions", "ledger_entries", "nfts")
D0, D1, D2 = date(2026, 2, 15), date(2026, 3, 1), date(2026, 3, 2)


def _id() -> str:
    return str(uuid.uuid4())


def _rebuild(con: duckdb.DuckDBPyConnection, catalog: str) -> set[str]:
    """Build every silver model, then every gold partition from the first to today,
    whose inputs exist (as the Dagster assets and a backfill do)."""
    built = set()
    for m in models("silver"):
        if all(table_exists(con, lay, tab) for lay, tab in m.upstream):
            build(con, m)
            built.add(m.table)
    for m in models("gold"):
        if all(table_exists(con, lay, tab) for lay, tab in m.upstream):
            build_days(con, m, GOLD_START, datetime.now(UTC).date(), catalog)
            built.add(m.table)
    return built


def _rows(con: duckdb.DuckDBPyConnection, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return con.execute(sql, list(params)).fetchall()


def test_gold_marts_from_two_days_of_events(lake_settings: Settings, feed: Feed,
                                            landing: LandingConfig) -> None:
    for table in TABLES:
        feed.create_topic(table, 1)
    a, b, c, d = (_id() for _ in range(4))  # users
    x, y, z = _id(), _id(), _id()  # cards: X and Z rare/Alpha, Y common/Beta
    for card, rarity, set_name in ((x, "rare", "Alpha"), (y, "common", "Beta"),
                                   (z, "rare", "Alpha")):
        feed.change("cards", "c", card_row(card, 1, rarity=rarity, set_name=set_name))

    def sale(card: str, buyer: str, seller: str, price: int, fee: int, at: str) -> dict[str, Any]:
        return {"id": _id(), "listing_id": _id(), "card_id": card, "buyer_id": buyer,
                "seller_id": seller, "price_cents": price, "fee_cents": fee, "created_at": at}

    # --- sales: day 0 (Z 900), day 1 (X 1000 -> 3000, Y 2000), day 2 (X 1500 -> 2600, Y 5000)
    feed.change("sales", "c", sale(z, d, c, 900, 45, "2026-02-15T12:00:00Z"))
    s1 = sale(x, a, b, 1000, 50, "2026-03-01T10:00:00Z")
    lsn = feed.change("sales", "c", s1)
    feed.change("sales", "c", s1, lsn=lsn)  # delivered twice: counts once
    feed.change("sales", "c", sale(y, a, d, 2000, 100, "2026-03-01T11:00:00Z"))
    feed.change("sales", "c", sale(x, c, a, 3000, 150, "2026-03-01T12:00:00Z"))
    feed.change("sales", "c", sale(x, b, c, 1500, 75, "2026-03-02T09:00:00Z"))
    # 01:00 at +02:00 is 23:00 UTC on day 2: the day is the UTC day
    feed.change("sales", "c", sale(x, d, b, 2600, 130, "2026-03-03T01:00:00+02:00"))
    feed.change("sales", "c", sale(y, a, d, 5000, 250, "2026-03-02T15:00:00Z"))

    # --- card_history for X: minted to B, sold to A, then to C
    for owner, prev, at in ((b, None, "2026-02-01T00:00:00Z"), (a, b, "2026-03-01T10:00:00Z"),
                            (c, a, "2026-03-01T12:00:00Z")):
        feed.change("card_history", "c", {"id": _id(), "card_id": x, "from_user_id": prev,
                                          "to_user_id": owner, "reason": "sale",
                                          "reference_id": None, "at": at})

    # --- listings: one created on each day; the second one later sold (an update)
    feed.change("listings", "c", {"id": _id(), "card_id": x, "seller_id": b, "price_cents": 1000,
                                  "status": "active", "created_at": "2026-03-01T08:00:00Z",
                                  "updated_at": "2026-03-01T08:00:00Z"})
    l2 = {"id": _id(), "card_id": y, "seller_id": d, "price_cents": 5000, "status": "active",
          "created_at": "2026-03-02T08:00:00Z", "updated_at": "2026-03-02T08:00:00Z"}
    feed.change("listings", "c", l2)
    feed.change("listings", "u", {**l2, "status": "sold", "updated_at": "2026-03-02T15:00:00Z"})
    gone = {"id": _id(), "card_id": y, "seller_id": d, "price_cents": 1, "status": "active",
            "created_at": "2026-03-02T08:00:00Z", "updated_at": "2026-03-02T08:00:00Z"}
    feed.change("listings", "c", gone)
    feed.change("listings", "d", gone)  # deleted: not in silver, not a new listing

    # --- nfts: pending, then minted
    nft = {"id": _id(), "card_id": x, "status": "pending", "mint_address": None,
           "metadata_uri": None, "tx_signature": None, "owner_address": None, "error": None,
           "created_at": "2026-03-01T00:00:00Z", "updated_at": "2026-03-01T00:00:00Z"}
    feed.change("nfts", "c", nft)
    feed.change("nfts", "u", {**nft, "status": "minted", "mint_address": "Mint1111",
                              "updated_at": "2026-03-01T00:01:00Z"})

    # --- auctions: two end on day 2 (one sold, one no_sale), one still active
    def auction(status: str, result: str | None, ends: str) -> dict[str, Any]:
        return {"id": _id(), "card_id": _id(), "seller_id": b, "start_price_cents": 100,
                "reserve_price_cents": None, "min_increment_cents": 100,
                "current_bid_cents": None, "current_bidder_id": None, "bid_count": 0,
                "starts_at": "2026-03-01T00:00:00Z", "ends_at": ends, "status": status,
                "result": result, "created_at": "2026-03-01T00:00:00Z",
                "updated_at": "2026-03-01T00:00:00Z"}
    for result in ("sold", "no_sale"):
        row = auction("active", None, "2026-03-02T20:00:00Z")
        feed.change("auctions", "c", row)
        feed.change("auctions", "u", {**row, "status": "ended", "result": result,
                                      "updated_at": "2026-03-02T20:00:01Z"})
    feed.change("auctions", "c", auction("active", None, "2026-03-09T00:00:00Z"))
    feed.change("bids", "c", {"id": _id(), "auction_id": _id(), "bidder_id": c,
                              "amount_cents": 700, "created_at": "2026-03-02T10:00:00Z"})

    # --- trades: one accepted on day 2 (created day 1), one rejected
    t1 = {"id": _id(), "from_user_id": a, "to_user_id": b, "message": None, "status": "pending",
          "expires_at": "2026-03-08T00:00:00Z", "created_at": "2026-03-01T09:00:00Z",
          "updated_at": "2026-03-01T09:00:00Z"}
    feed.change("trade_offers", "c", t1)
    feed.change("trade_offers", "u", {**t1, "status": "accepted",
                                      "updated_at": "2026-03-02T09:30:00Z"})
    feed.change("trade_offers", "c", {**t1, "id": _id(), "status": "rejected"})

    # --- ledger: a deposit each day, balanced
    ext, acct = _id(), _id()
    feed.change("ledger_accounts", "c", {"id": ext, "user_id": None, "kind": "external_deposits",
                                         "balance_cents": 0, "created_at": "2026-01-01T00:00:00Z"})
    feed.change("ledger_accounts", "c", {"id": acct, "user_id": a, "kind": "user_available",
                                         "balance_cents": 0, "created_at": "2026-01-01T00:00:00Z"})

    def deposit(amount: int, at: str) -> str:
        tx = _id()
        feed.change("ledger_transactions", "c", {"id": tx, "kind": "deposit",
                                                 "reference_id": None, "created_at": at})
        for account, cents in ((acct, amount), (ext, -amount)):
            feed.change("ledger_entries", "c", {"id": _id(), "transaction_id": tx,
                                                "account_id": account, "amount_cents": cents,
                                                "created_at": at})
        return tx
    deposit(10_000, "2026-03-01T07:00:00Z")
    tx2 = deposit(500, "2026-03-02T07:00:00Z")
    feed.flush()

    con = connect(lake_settings)
    land(con, landing, list(TABLES))
    built = _rebuild(con, lake_settings.lake_catalog)
    assert {"ece.gold.daily_market_summary", "ece.gold.card_price_daily",
            "ece.gold.user_activity_daily", "ece.gold.financial_report_daily",
            "ece.gold.market_trends", "ece.gold.portfolio_value_daily",
            "ece.silver.card_ownership", "ece.silver.cards"} <= built

    # silver: deduplicated current state, typed
    assert _rows(con, "SELECT count(*) FROM ece.silver.sales") == [(7,)]
    assert _rows(con, "SELECT count(*), count(*) FILTER (WHERE status = 'sold') "
                      "FROM ece.silver.listings") == [(2, 1)]
    assert _rows(con, "SELECT status, mint_address FROM ece.silver.nfts") == [
        ("minted", "Mint1111")]
    types = dict(_rows(con, "SELECT column_name, data_type FROM duckdb_columns() WHERE "
                            "database_name = 'ece' AND schema_name = 'silver' "
                            "AND table_name = 'sales'"))
    assert types["id"] == "UUID" and types["price_cents"] == "BIGINT"
    assert types["created_at"] == "TIMESTAMP WITH TIME ZONE"
    owners = _rows(con, "SELECT CAST(owner_id AS VARCHAR), valid_to IS NULL, is_current "
                        "FROM ece.silver.card_ownership WHERE card_id = ? ORDER BY valid_from", x)
    assert owners == [(b, False, False), (a, False, False), (c, True, True)]
    chained = _rows(con, "SELECT count(*) FROM ece.silver.card_ownership o JOIN "
                         "ece.silver.card_ownership n ON n.card_id = o.card_id "
                         "AND n.valid_from = o.valid_to")
    assert chained == [(2,)]
    assert _rows(con, "SELECT DISTINCT transaction_kind FROM ece.silver.ledger_entries") == [
        ("deposit",)]

    # gold.daily_market_summary
    summary = _rows(con, "SELECT date, sales, volume_cents, avg_price_cents, median_price_cents, "
                         "unique_buyers, unique_sellers, new_listings, auctions_ended, "
                         "auction_sell_through_rate, trades_accepted, fees_cents "
                         "FROM ece.gold.daily_market_summary ORDER BY date")
    assert summary == [
        (D0, 1, 900, 900, 900, 1, 1, 0, 0, None, 0, 45),
        (D1, 3, 6000, 2000, 2000, 2, 3, 1, 0, None, 0, 300),
        (D2, 3, 9100, 3033, 2600, 3, 3, 1, 2, 0.5, 1, 455),
    ]

    # gold.card_price_daily (OHLC by sale time, UTC days)
    ohlc = _rows(con, "SELECT CAST(card_id AS VARCHAR), date, open_cents, high_cents, "
                      "low_cents, close_cents, sales, volume_cents FROM ece.gold.card_price_daily "
                      "ORDER BY date, card_id = ? DESC, card_id = ? DESC", x, z)
    assert ohlc == [
        (z, D0, 900, 900, 900, 900, 1, 900),
        (x, D1, 1000, 3000, 1000, 3000, 2, 4000), (y, D1, 2000, 2000, 2000, 2000, 1, 2000),
        (x, D2, 1500, 2600, 1500, 2600, 2, 4100), (y, D2, 5000, 5000, 5000, 5000, 1, 5000),
    ]

    # gold.user_activity_daily
    activity = {(str(r[0]), r[1]): r[2:] for r in _rows(
        con, "SELECT user_id, date, purchases, sales, bids, listings, trades, spent_cents, "
             "earned_cents FROM ece.gold.user_activity_daily")}
    assert activity[(a, D1)] == (2, 1, 0, 0, 0, 3000, 2850)
    assert activity[(b, D1)] == (0, 1, 0, 1, 0, 0, 950)
    assert activity[(c, D2)] == (0, 1, 1, 0, 0, 0, 1425)
    assert activity[(a, D2)] == (1, 0, 0, 0, 1, 5000, 0)
    assert activity[(b, D2)] == (1, 1, 0, 0, 1, 1500, 2470)

    # gold.financial_report_daily
    report = "SELECT date, gross_volume_cents, fees_cents, deposits_cents, ledger_balanced " \
             "FROM ece.gold.financial_report_daily ORDER BY date"
    assert _rows(con, report) == [(D0, 900, 45, 0, True), (D1, 6000, 300, 10_000, True),
                                  (D2, 9100, 455, 500, True)]

    # gold.market_trends: trailing 7/30-day volume-weighted averages per rarity and set
    trends = _rows(con, "SELECT date, rarity, set_name, volume_cents, avg_price_cents, "
                        "avg_price_7d_cents, avg_price_30d_cents, round(momentum_7d, 6) "
                        "FROM ece.gold.market_trends ORDER BY date, rarity")
    assert trends == [
        (D0, "rare", "Alpha", 900, 900, 900, 900, 0.0),
        (D1, "common", "Beta", 2000, 2000, 2000, 2000, 0.0),
        (D1, "rare", "Alpha", 4000, 2000, 2000, 1633, round(6000 / 4900 - 1, 6)),
        (D2, "common", "Beta", 5000, 5000, 3500, 3500, 0.0),
        (D2, "rare", "Alpha", 4100, 2050, 2025, 1800, 0.125),
    ]

    # gold.portfolio_value_daily: end-of-day holder of X, valued at its last close
    portfolio = {(str(r[0]), r[1]): (r[2], r[3]) for r in _rows(
        con, "SELECT user_id, date, card_count, value_cents FROM ece.gold.portfolio_value_daily")}
    assert portfolio[(b, date(2026, 2, 28))] == (1, 0)
    assert sum(1 for u, _ in portfolio if u == b) == 28  # Feb 1 .. Feb 28
    assert (a, D1) not in portfolio  # held X only between 10:00 and 12:00 on day 1
    assert portfolio[(c, D1)] == (1, 3000) and portfolio[(c, D2)] == (1, 2600)
    today = datetime.now(UTC).date()
    assert max(d for u, d in portfolio if u == c) == today and portfolio[(c, today)] == (1, 2600)

    # an unbalanced entry lands on day 2: that day, and only that day, is flagged
    feed.change("ledger_entries", "c", {"id": _id(), "transaction_id": tx2, "account_id": acct,
                                        "amount_cents": 1, "created_at": "2026-03-02T07:00:00Z"})
    feed.flush()
    land(con, landing, ["ledger_entries"])
    _rebuild(con, lake_settings.lake_catalog)
    assert _rows(con, report) == [(D0, 900, 45, 0, True), (D1, 6000, 300, 10_000, True),
                                  (D2, 9100, 455, 501, False)]
