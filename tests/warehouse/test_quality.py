"""The quality suites of every silver and gold table, run as Dagster asset checks.

A small, consistent market is produced into the real broker as CDC events, landed,
built into silver and gold and checked by Dagster: every suite passes. Then bad
rows are planted, through the CDC where the data can carry them (a fee off by one
cent, a buyer who does not exist, a ledger day that does not balance) and straight
into silver where only a bug could make them (a card with two current owners):
exactly the rule that guards against each one fails, names it, and lands in
``ece.quality.check_results``, in GE's Data Docs and in ``ece status``'s summary.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

from cdcfeed import Feed, card_row
from dagster import AssetCheckEvaluation, AssetSelection, DagsterInstance, materialize

from ece.settings import Settings
from orchestration.assets.bronze import bronze_landing
from orchestration.assets.layers import LAYER_ASSETS
from orchestration.checks import ASSET_CHECKS, QUALITY_CHECKS
from orchestration.resources import resources_for
from quality import docs, status
from quality.registry import BY_ASSET
from warehouse.lake import connect
from warehouse.sql import LAYERS, models

TABLES = ("users", "cards", "card_history", "listings", "sales", "auctions", "bids",
          "trade_offers", "nfts", "ledger_accounts", "ledger_transactions", "ledger_entries",
          "watchlists", "price_alerts")
DAY = "2026-03-01"


def _id() -> str:
    return str(uuid.uuid4())


def _at(hour: int, minute: int = 0) -> str:
    return f"{DAY}T{hour:02d}:{minute:02d}:00Z"


@dataclass
class Market:
    """A consistent little market, published as CDC events (each rule holds)."""

    feed: Feed
    fee_bps: int
    users: list[str] = field(default_factory=lambda: [_id() for _ in range(3)])
    accounts: dict[str, str] = field(default_factory=dict)

    def user(self, uid: str, n: int) -> None:
        self.feed.change("users", "c", {
            "id": uid, "email": f"u{n}@example.com", "username": f"user{n}", "role": "user",
            "custody_address": None, "created_at": _at(0), "updated_at": _at(0)})

    def card(self, owner: str, version: int = 1) -> str:
        card = _id()
        self.feed.change("cards", "c", card_row(card, version, owner_id=owner))
        self.history(card, None, owner, "issue", _at(1))
        return card

    def history(self, card: str, old: str | None, new: str, reason: str, at: str) -> None:
        self.feed.change("card_history", "c", {
            "id": _id(), "card_id": card, "from_user_id": old, "to_user_id": new,
            "reason": reason, "reference_id": None, "at": at})

    def account(self, owner: str | None, kind: str) -> str:
        acct = self.accounts[f"{owner}/{kind}"] = _id()
        self.feed.change("ledger_accounts", "c", {
            "id": acct, "user_id": owner, "kind": kind, "balance_cents": 0,
            "created_at": _at(0)})
        return acct

    def transaction(self, kind: str, at: str, entries: dict[str, int]) -> str:
        tx = _id()
        self.feed.change("ledger_transactions", "c", {"id": tx, "kind": kind,
                                                      "reference_id": None, "created_at": at})
        for account, cents in entries.items():
            self.feed.change("ledger_entries", "c", {
                "id": _id(), "transaction_id": tx, "account_id": account,
                "amount_cents": cents, "created_at": at})
        return tx

    def sale(self, card: str, seller: str, buyer: str, price: int, at: str,
             fee: int | None = None) -> dict[str, Any]:
        listing = {"id": _id(), "card_id": card, "seller_id": seller, "price_cents": price,
                   "status": "sold", "created_at": _at(2), "updated_at": at}
        self.feed.change("listings", "c", listing)
        row = {"id": _id(), "listing_id": listing["id"], "card_id": card, "buyer_id": buyer,
               "seller_id": seller, "price_cents": price,
               "fee_cents": price * self.fee_bps // 10_000 if fee is None else fee,
               "created_at": at}
        self.feed.change("sales", "c", row)
        return row

    def publish(self) -> dict[str, Any]:
        """Every table gets rows that satisfy its suite; returns the ids tests reuse."""
        for table in TABLES:
            self.feed.create_topic(table, 1)
        a, b, c = self.users
        for n, uid in enumerate(self.users):
            self.user(uid, n)
        x, y, z = self.card(a), self.card(b), self.card(c)
        ext, fees = self.account(None, "external_deposits"), self.account(None, "platform_fees")
        avail = {u: self.account(u, "user_available") for u in self.users}
        self.transaction("deposit", _at(3), {avail[b]: 10_000, ext: -10_000})
        # B buys X from A (card, ownership, ledger move together)
        sale = self.sale(x, a, b, 2_000, _at(4))
        self.feed.change("cards", "u", card_row(x, 2, owner_id=b))
        self.history(x, a, b, "sale", _at(4))
        self.transaction("sale", _at(4), {avail[b]: -2_000, avail[a]: 2_000 - sale["fee_cents"],
                                          fees: sale["fee_cents"]})
        # auctions: Z sold to A at its highest bid, Y ended without bids, one still active
        auction = {"id": _id(), "card_id": z, "seller_id": c, "start_price_cents": 500,
                   "reserve_price_cents": 800, "min_increment_cents": 100,
                   "current_bid_cents": 900, "current_bidder_id": a, "bid_count": 2,
                   "starts_at": _at(5), "ends_at": _at(8), "status": "ended", "result": "sold",
                   "created_at": _at(5), "updated_at": _at(8)}
        self.feed.change("auctions", "c", auction)
        for bidder, cents, hour in ((b, 600, 6), (a, 900, 7)):
            self.feed.change("bids", "c", {"id": _id(), "auction_id": auction["id"],
                                           "bidder_id": bidder, "amount_cents": cents,
                                           "created_at": _at(hour)})
        self.feed.change("cards", "u", card_row(z, 2, owner_id=a))
        self.history(z, c, a, "auction", _at(8))
        for card, seller, state, result in ((y, b, "ended", "no_sale"),
                                            (y, b, "active", None)):
            self.feed.change("auctions", "c", {
                **auction, "id": _id(), "card_id": card, "seller_id": seller,
                "current_bid_cents": None, "current_bidder_id": None, "bid_count": 0,
                "status": state, "result": result})
        self.feed.change("trade_offers", "c", {
            "id": _id(), "from_user_id": a, "to_user_id": c, "message": "swap?",
            "status": "accepted", "expires_at": "2026-03-08T00:00:00Z",
            "created_at": _at(9), "updated_at": _at(10)})
        self.feed.change("nfts", "c", {
            "id": _id(), "card_id": x, "status": "minted", "mint_address": "Mint1111",
            "metadata_uri": "ar://meta", "tx_signature": "sig", "owner_address": "Owner111",
            "error": None, "created_at": _at(1), "updated_at": _at(2)})
        self.feed.change("watchlists", "c", {"user_id": c, "card_id": x, "created_at": _at(3)},
                         key_fields=("user_id", "card_id"))
        self.feed.change("price_alerts", "c", {
            "id": _id(), "user_id": c, "max_price_cents": 1_500, "card_id": None,
            "set_name": "Alpha", "rarity": "rare", "created_at": _at(3)})
        self.feed.flush()
        return {"cards": (x, y, z), "avail": avail, "ext": ext}


def _refresh(settings: Settings, instance: DagsterInstance) -> dict[tuple[str, str], Any]:
    """Land, build silver and DAY's gold partitions, check everything (a refresh of DAY)."""
    result = materialize([bronze_landing, *LAYER_ASSETS, *ASSET_CHECKS], partition_key=DAY,
                         resources=resources_for(settings), instance=instance)
    assert result.success  # failed checks are reported, never fail the run
    return {"run_id": result.run_id, **_evaluations(result.get_asset_check_evaluations())}


def _evaluations(evaluations: list[AssetCheckEvaluation]) -> dict[tuple[str, str], Any]:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in evaluations}


def test_every_table_has_a_suite_and_value_sets_match_the_api() -> None:
    tables = {f"{layer}/{m.name}" for layer in LAYERS for m in models(layer)}
    assert tables == set(BY_ASSET)
    assert len(QUALITY_CHECKS) == len(tables)
    from api.auctions.models import AUCTION_RESULTS, AUCTION_STATUSES
    from api.cards.models import RARITIES
    from api.ledger.models import ACCOUNT_KINDS
    from api.market.models import LISTING_STATUSES
    from api.nfts.models import NFT_STATUSES
    from api.trades.models import OFFER_STATUSES
    from api.users.models import ROLES
    from quality import silver_suites as s

    assert (s.RARITIES, s.ROLES, s.LISTING_STATUSES, s.AUCTION_STATUSES, s.AUCTION_RESULTS,
            s.OFFER_STATUSES, s.NFT_STATUSES, s.ACCOUNT_KINDS) == (
        RARITIES, ROLES, LISTING_STATUSES, AUCTION_STATUSES, AUCTION_RESULTS, OFFER_STATUSES,
        NFT_STATUSES, ACCOUNT_KINDS)


def test_clean_market_passes_every_suite(lake_settings: Settings, feed: Feed) -> None:
    Market(feed, lake_settings.fee_bps).publish()
    checks = _refresh(lake_settings, DagsterInstance.ephemeral())
    run_id = checks.pop("run_id")
    skipped = sorted(k for k, e in checks.items() if k[0] in BY_ASSET and "skipped" in e.metadata)
    assert not skipped  # every table and every table a rule reads was built
    failed = sorted(k for k, e in checks.items() if not e.passed)
    assert not failed, [(k, checks[k].metadata["observed_value"].value) for k in failed]
    expected = {(s.asset, c.name) for s in BY_ASSET.values() for c in s.checks()}
    assert {k for k in checks if k[0] in BY_ASSET} == expected
    con = connect(lake_settings, read_only=True)
    stored = con.execute('SELECT asset, "check", success FROM ece.quality.check_results '
                         "WHERE run_id = ?", [run_id]).fetchall()
    assert {(a, c) for a, c, _ in stored} == expected and all(ok for *_, ok in stored)
    assert status.summary(status.latest_failures(con)) == (
        True, "every check passed on its latest run")
    index = docs.index_of(docs.root_of(lake_settings))
    assert index.exists() and index == lake_settings.data_dir / "quality/docs/index.html"
    assert "silver_sales" in index.read_text() and "gold_daily_market_summary" in \
        index.read_text()


def test_planted_bad_rows_fail_the_rule_that_guards_them(lake_settings: Settings,
                                                         feed: Feed) -> None:
    market = Market(feed, lake_settings.fee_bps)
    ids = market.publish()
    x, y, _ = ids["cards"]
    a, b, c = market.users
    ghost = _id()  # a buyer who never existed
    off_by_one = market.sale(y, b, c, 1_999, _at(11), fee=1_999 * market.fee_bps // 10_000 + 1)
    unknown_buyer = market.sale(x, b, ghost, 3_000, _at(12))
    # a lone entry: its transaction and its day no longer sum to zero
    market.transaction("deposit", _at(13), {ids["avail"][c]: 700})
    feed.flush()
    instance = DagsterInstance.ephemeral()
    checks = _refresh(lake_settings, instance)
    run_id = checks.pop("run_id")
    failed = {k: e for k, e in checks.items() if not e.passed}
    fee = failed.pop(("silver/sales", "fee_is_floor_of_bps"))
    assert off_by_one["id"] in fee.metadata["details"].value
    assert "1 unexpected" in fee.metadata["observed_value"].value
    buyer = failed.pop(("silver/sales", "buyer_id_resolves"))
    assert f"buyer_id {ghost} not in silver.users" in buyer.metadata["details"].value
    assert unknown_buyer["id"] not in fee.metadata["details"].value  # its fee is right
    day = failed.pop(("silver/ledger_entries", "day_balanced"))
    assert f"day {DAY} sums to 700" in day.metadata["details"].value
    assert failed.pop(("silver/ledger_entries", "transaction_balanced"))
    # downstream of the same rows, and only those
    assert failed.pop(("gold/financial_report_daily", "ledger_balanced_in_set"))
    assert failed.pop(("gold/user_activity_daily", "user_id_resolves"))
    assert not failed, sorted(failed)

    con = connect(lake_settings)
    stored = dict(((a_, c_), (ok, obs)) for a_, c_, ok, obs in con.execute(
        'SELECT asset, "check", success, observed_value FROM ece.quality.check_results '
        "WHERE run_id = ? AND NOT success", [run_id]).fetchall())
    assert set(stored) == {("silver/sales", "fee_is_floor_of_bps"),
                           ("silver/sales", "buyer_id_resolves"),
                           ("silver/ledger_entries", "day_balanced"),
                           ("silver/ledger_entries", "transaction_balanced"),
                           ("gold/financial_report_daily", "ledger_balanced_in_set"),
                           ("gold/user_activity_daily", "user_id_resolves")}

    # A bug only silver could have: a second open ownership period for card X.
    con.execute("INSERT INTO ece.silver.card_ownership (card_id, owner_id, valid_from, "
                "valid_to, is_current, history_id) VALUES (?, ?, TIMESTAMPTZ '2026-03-01 "
                "20:00:00+00', NULL, true, ?)", [x, a, _id()])
    ownership = next(chk for chk in QUALITY_CHECKS
                     if chk.node_def.name == "silver_card_ownership_quality")
    rerun = materialize([*LAYER_ASSETS, ownership], resources=resources_for(lake_settings),
                        instance=instance, selection=AssetSelection.checks(ownership))
    assert rerun.success
    owners = _evaluations(rerun.get_asset_check_evaluations())
    assert not owners[("silver/card_ownership", "one_current_owner")].passed
    assert f"card {x} has 2 current owners" in \
        owners[("silver/card_ownership", "one_current_owner")].metadata["details"].value
    assert owners[("silver/card_ownership", "current_iff_open")].passed
    latest = status.latest_failures(con)
    assert ("silver/card_ownership", "one_current_owner") in {(f.asset, f.check)
                                                              for f in latest}
    healthy, line = status.summary(latest)
    assert not healthy and line.startswith("7 failing: ") and "and 3 more" in line
    assert "silver/card_ownership one_current_owner" in line
    index = docs.index_of(docs.root_of(lake_settings)).read_text()
    assert "silver_card_ownership" in index and "Failed" in index
    # and `ece status` says so, in its own row
    con.close()
    done = subprocess.run([sys.executable, "-m", "ops", "status"], capture_output=True,
                          text=True, timeout=120, check=False, env={
                              "PATH": "/usr/bin:/bin", "COLUMNS": "400",
                              **lake_settings.as_environment()})
    assert done.returncode == 1
    row = next(line for line in done.stdout.splitlines() if line.startswith("│ data quality"))
    assert "│ no" in row and "7 failing" in row, done.stdout
