"""The suites of every gold mart: grains unique, figures sane, sums equal to silver.

Each mart's grain (``date``, or ``(entity, date)``) is its key. The "matches
silver" rules recompute a day's figure from ``ece.silver.*`` for the days the mart
holds, so a partition built from stale or partial silver shows up as a failed check
rather than as a wrong chart in a report.
"""

from __future__ import annotations

from quality.silver_suites import RARITIES
from quality.tables import Rule, TableSuite, named, resolves, when


def _matches_sales(column: str, expression: str) -> Rule:
    """``t.<column>`` equals ``expression`` over silver.sales of the row's UTC day."""
    return Rule(
        f"{column}_matches_silver",
        f"{column} equals {expression} of the day's ece.silver.sales",
        f"CASE WHEN t.{column} IS DISTINCT FROM (SELECT CAST(coalesce({expression}, 0) AS BIGINT)"
        f" FROM ece.silver.sales AS s WHERE CAST(timezone('UTC', s.created_at) AS DATE) = "
        f"t.date) THEN CAST(t.date AS VARCHAR) || ': {column} ' || "
        f"CAST(t.{column} AS VARCHAR) || ' differs from silver' END")


DAILY_MARKET_SUMMARY = TableSuite(
    "gold", "daily_market_summary", key=("date",),
    non_negative=("sales", "volume_cents", "unique_buyers", "unique_sellers", "new_listings",
                  "auctions_ended", "trades_accepted", "fees_cents"),
    rules=(
        Rule("sell_through_in_range", "auction_sell_through_rate is within [0, 1]",
             "CASE WHEN t.auction_sell_through_rate NOT BETWEEN 0 AND 1 "
             "THEN CAST(t.date AS VARCHAR) || ': sell-through ' || "
             "CAST(t.auction_sell_through_rate AS VARCHAR) END"),
        when("fees_within_volume", "fees never exceed the volume",
             "t.fees_cents > t.volume_cents", named("day", "date"), "has fees above volume"),
        _matches_sales("volume_cents", "sum(s.price_cents)"),
        _matches_sales("fees_cents", "sum(s.fee_cents)"),
    ))

CARD_PRICE_DAILY = TableSuite(
    "gold", "card_price_daily", key=("card_id", "date"),
    positive=("open_cents", "high_cents", "low_cents", "close_cents", "sales", "volume_cents"),
    rules=(
        Rule("ohlc_consistent", "low <= open, close <= high",
             "CASE WHEN NOT (t.low_cents <= least(t.open_cents, t.close_cents) "
             "AND greatest(t.open_cents, t.close_cents) <= t.high_cents) "
             "THEN CAST(t.card_id AS VARCHAR) || ' on ' || CAST(t.date AS VARCHAR) || "
             "': open/close outside low..high' END"),
        resolves("card_id", "silver.cards", "card"),
    ))

USER_ACTIVITY_DAILY = TableSuite(
    "gold", "user_activity_daily", key=("user_id", "date"),
    non_negative=("purchases", "sales", "bids", "listings", "trades", "spent_cents",
                  "earned_cents"),
    rules=(
        when("has_activity", "a row exists only for a day with some activity",
             "t.purchases + t.sales + t.bids + t.listings + t.trades = 0",
             named("user", "user_id") + " || ' on ' || CAST(t.date AS VARCHAR)",
             "has no activity"),
        resolves("user_id", "silver.users", "user"),
    ))

MARKET_TRENDS = TableSuite(
    "gold", "market_trends", key=("date", "rarity", "set_name"),
    in_sets={"rarity": RARITIES},
    positive=("volume_cents", "avg_price_cents", "avg_price_7d_cents", "avg_price_30d_cents"),
    rules=(
        Rule("momentum_is_ratio",
             "momentum_7d = avg_price_7d / avg_price_30d - 1 (within the averages' rounding)",
             "CASE WHEN abs((t.momentum_7d + 1) * t.avg_price_30d_cents - t.avg_price_7d_cents)"
             " > 0.5 * abs(t.momentum_7d + 1) + 0.5 + 1e-6 "
             "THEN CAST(t.date AS VARCHAR) || ' ' || t.rarity || '/' || t.set_name || "
             "': momentum disagrees with the averages' END"),
    ))

PORTFOLIO_VALUE_DAILY = TableSuite(
    "gold", "portfolio_value_daily", key=("user_id", "date"),
    positive=("card_count",), non_negative=("value_cents",),
    rules=(resolves("user_id", "silver.users", "user"),))

FINANCIAL_REPORT_DAILY = TableSuite(
    "gold", "financial_report_daily", key=("date",),
    in_sets={"ledger_balanced": (True,)},
    non_negative=("gross_volume_cents", "fees_cents", "deposits_cents"),
    rules=(
        _matches_sales("gross_volume_cents", "sum(s.price_cents)"),
        _matches_sales("fees_cents", "sum(s.fee_cents)"),
    ))

GOLD_SUITES: tuple[TableSuite, ...] = (
    DAILY_MARKET_SUMMARY, CARD_PRICE_DAILY, USER_ACTIVITY_DAILY, MARKET_TRENDS,
    PORTFOLIO_VALUE_DAILY, FINANCIAL_REPORT_DAILY)
