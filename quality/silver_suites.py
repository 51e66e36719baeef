"""The suites of every silver table: what the marts and analysts rely on.

Value sets are the API's CHECK constraints, restated here because importing the
SQLAlchemy models would add ~2 s to every Dagster code location load;
``tests/warehouse/test_quality.py`` asserts they stay equal to the API's.
Referential rules run only when their target table exists (a fresh lake has
nothing landed yet); the check then says it was skipped.
"""

from __future__ import annotations

from quality.tables import Rule, TableSuite, named, resolves, when

RARITIES = ("common", "uncommon", "rare", "epic", "legendary")  # api/cards/models.py
ROLES = ("user", "admin")  # api/users/models.py
LISTING_STATUSES = ("active", "sold", "cancelled")  # api/market/models.py
AUCTION_STATUSES = ("active", "ended", "cancelled")  # api/auctions/models.py
AUCTION_RESULTS = ("sold", "no_sale")
OFFER_STATUSES = ("pending", "accepted", "rejected", "cancelled", "expired")  # api/trades
NFT_STATUSES = ("pending", "uploading", "minting", "minted", "failed")  # api/nfts/models.py
ACCOUNT_KINDS = ("user_available", "user_held", "platform_fees", "external_deposits")

_PERIOD = named("period", "history_id")
_UTC_DAY = "CAST(timezone('UTC', t.created_at) AS DATE)"

USERS = TableSuite(
    "silver", "users", key=("id",), required=("email", "username", "role"),
    in_sets={"role": ROLES},
    rules=(
        Rule("email_unique", "no two users share an email",
             "CASE WHEN count(*) OVER (PARTITION BY lower(t.email)) > 1 "
             "THEN 'email ' || t.email || ' used by several users' END"),
        Rule("username_unique", "no two users share a username",
             "CASE WHEN count(*) OVER (PARTITION BY t.username) > 1 "
             "THEN 'username ' || t.username || ' used by several users' END"),
    ))

CARDS = TableSuite(
    "silver", "cards", key=("id",), in_sets={"rarity": RARITIES}, required=("owner_id",),
    rules=(
        resolves("owner_id", "silver.users", "user"),
        Rule("owner_is_current_owner",
             "a card's owner is its current owner in silver.card_ownership (warning: the "
             "two topics may land a moment apart)",
             "CASE WHEN EXISTS (SELECT 1 FROM ece.silver.card_ownership AS o "
             "WHERE o.card_id = t.id AND o.is_current AND o.owner_id IS DISTINCT FROM t.owner_id) "
             "THEN 'card ' || CAST(t.id AS VARCHAR) || ' owner differs from its ownership' END",
             warn_only=True),
    ))

CARD_OWNERSHIP = TableSuite(
    "silver", "card_ownership", key=("history_id",),
    required=("card_id", "owner_id", "valid_from", "is_current"),
    rules=(
        Rule("one_current_owner", "exactly one current owner per card",
             "CASE WHEN count(*) FILTER (WHERE t.is_current) OVER (PARTITION BY t.card_id) <> 1 "
             "THEN 'card ' || CAST(t.card_id AS VARCHAR) || ' has ' || "
             "CAST(count(*) FILTER (WHERE t.is_current) OVER (PARTITION BY t.card_id) AS VARCHAR)"
             " || ' current owners' END"),
        when("current_iff_open", "is_current exactly when valid_to is empty",
             "t.is_current IS DISTINCT FROM (t.valid_to IS NULL)", _PERIOD,
             "is_current disagrees with valid_to"),
        when("period_ordered", "valid_to is not before valid_from",
             "t.valid_to < t.valid_from", _PERIOD, "ends before it starts"),
        resolves("card_id", "silver.cards", "card"),
        resolves("owner_id", "silver.users", "user"),
    ))

LISTINGS = TableSuite(
    "silver", "listings", key=("id",),
    required=("card_id", "seller_id", "price_cents", "status", "created_at"),
    in_sets={"status": LISTING_STATUSES}, positive=("price_cents",),
    rules=(resolves("card_id", "silver.cards", "card"),
           resolves("seller_id", "silver.users", "user")))

SALES = TableSuite(
    "silver", "sales", key=("id",),
    required=("card_id", "buyer_id", "seller_id", "price_cents", "fee_cents", "created_at"),
    positive=("price_cents",), non_negative=("fee_cents",),
    rules=(
        Rule("fee_is_floor_of_bps", "fee_cents = floor(price_cents × {fee_bps} / 10000)",
             "CASE WHEN t.fee_cents IS DISTINCT FROM (t.price_cents * {fee_bps}) // 10000 "
             "THEN 'sale ' || CAST(t.id AS VARCHAR) || ': fee ' || CAST(t.fee_cents AS VARCHAR)"
             " || ' <> ' || CAST((t.price_cents * {fee_bps}) // 10000 AS VARCHAR) END"),
        when("buyer_is_not_seller", "nobody buys from themselves",
             "t.buyer_id = t.seller_id", named("sale"), "buyer is the seller"),
        resolves("card_id", "silver.cards", "card"),
        resolves("buyer_id", "silver.users", "user"),
        resolves("seller_id", "silver.users", "user"),
        resolves("listing_id", "silver.listings", "listing"),
    ))

AUCTIONS = TableSuite(
    "silver", "auctions", key=("id",),
    required=("card_id", "seller_id", "start_price_cents", "status", "ends_at"),
    in_sets={"status": AUCTION_STATUSES, "result": AUCTION_RESULTS},
    positive=("start_price_cents",), non_negative=("bid_count",),
    rules=(
        Rule("result_iff_ended", "an auction has a result exactly when it ended",
             "CASE WHEN (t.status = 'ended') IS DISTINCT FROM (t.result IS NOT NULL) "
             "THEN 'auction ' || CAST(t.id AS VARCHAR) || ' is ' || t.status || ' with result '"
             " || coalesce(t.result, 'none') END"),
        Rule("sold_has_winning_bid",
             "a sold auction's highest bid equals its current bid, by its current bidder, "
             "at or above the reserve",
             "CASE WHEN t.result = 'sold' AND NOT (t.current_bid_cents IS NOT NULL "
             "AND t.current_bid_cents >= coalesce(t.reserve_price_cents, 0) "
             "AND EXISTS (SELECT 1 FROM ece.silver.bids AS b WHERE b.auction_id = t.id "
             "AND b.bidder_id = t.current_bidder_id AND b.amount_cents = t.current_bid_cents) "
             "AND NOT EXISTS (SELECT 1 FROM ece.silver.bids AS b WHERE b.auction_id = t.id "
             "AND b.amount_cents > t.current_bid_cents)) "
             "THEN 'sold auction ' || CAST(t.id AS VARCHAR) || ' has no matching winning bid' "
             "END"),
        Rule("no_sale_below_reserve",
             "a no_sale auction has no bid at or above its reserve (warning: an admin lock "
             "on the card also ends an auction as no_sale)",
             "CASE WHEN t.result = 'no_sale' AND EXISTS (SELECT 1 FROM ece.silver.bids AS b "
             "WHERE b.auction_id = t.id AND b.amount_cents >= coalesce(t.reserve_price_cents, 0)"
             ") THEN 'no_sale auction ' || CAST(t.id AS VARCHAR) || ' had a bid meeting the "
             "reserve' END", warn_only=True),
        Rule("bid_count_matches_bids", "bid_count equals the auction's bids in silver.bids",
             "CASE WHEN t.bid_count IS DISTINCT FROM (SELECT count(*) FROM ece.silver.bids AS b "
             "WHERE b.auction_id = t.id) THEN 'auction ' || CAST(t.id AS VARCHAR) || ' counts '"
             " || CAST(t.bid_count AS VARCHAR) || ' bids' END"),
        resolves("card_id", "silver.cards", "card"),
        resolves("seller_id", "silver.users", "user"),
        resolves("current_bidder_id", "silver.users", "user"),
    ))

BIDS = TableSuite(
    "silver", "bids", key=("id",),
    required=("auction_id", "bidder_id", "amount_cents", "created_at"),
    positive=("amount_cents",),
    rules=(
        when("bid_at_least_start", "no bid below its auction's start price",
             "t.amount_cents < (SELECT a.start_price_cents FROM ece.silver.auctions AS a "
             "WHERE a.id = t.auction_id)", named("bid"), "is below the start price"),
        resolves("auction_id", "silver.auctions", "auction"),
        resolves("bidder_id", "silver.users", "user"),
    ))

TRADE_OFFERS = TableSuite(
    "silver", "trade_offers", key=("id",),
    required=("from_user_id", "to_user_id", "status", "created_at"),
    in_sets={"status": OFFER_STATUSES},
    rules=(
        when("not_to_self", "nobody trades with themselves",
             "t.from_user_id = t.to_user_id", named("offer"), "is to its sender"),
        resolves("from_user_id", "silver.users", "user"),
        resolves("to_user_id", "silver.users", "user"),
    ))

NFTS = TableSuite(
    "silver", "nfts", key=("id",), required=("card_id", "status"),
    in_sets={"status": NFT_STATUSES},
    rules=(
        when("minted_has_mint_address", "a minted NFT has its mint address and owner",
             "t.status = 'minted' AND (t.mint_address IS NULL OR t.owner_address IS NULL)",
             named("nft"), "is minted without a mint or owner address"),
        resolves("card_id", "silver.cards", "card"),
    ))

LEDGER_ENTRIES = TableSuite(
    "silver", "ledger_entries", key=("id",),
    required=("transaction_id", "account_id", "amount_cents", "created_at",
              "transaction_kind", "account_kind"),
    in_sets={"account_kind": ACCOUNT_KINDS},
    rules=(
        Rule("day_balanced", "each UTC day's ledger entries sum to zero",
             f"CASE WHEN sum(t.amount_cents) OVER (PARTITION BY {_UTC_DAY}) <> 0 "
             f"THEN 'day ' || CAST({_UTC_DAY} AS VARCHAR) || ' sums to ' || "
             f"CAST(sum(t.amount_cents) OVER (PARTITION BY {_UTC_DAY}) AS VARCHAR) END"),
        Rule("transaction_balanced", "each ledger transaction's entries sum to zero",
             "CASE WHEN sum(t.amount_cents) OVER (PARTITION BY t.transaction_id) <> 0 "
             "THEN 'transaction ' || CAST(t.transaction_id AS VARCHAR) || ' sums to ' || "
             "CAST(sum(t.amount_cents) OVER (PARTITION BY t.transaction_id) AS VARCHAR) END"),
        when("amount_not_zero", "no entry moves zero cents",
             "t.amount_cents = 0", named("entry"), "is zero"),
    ))

WATCHLISTS = TableSuite(
    "silver", "watchlists", key=("user_id", "card_id"), required=("created_at",),
    rules=(resolves("user_id", "silver.users", "user"),
           resolves("card_id", "silver.cards", "card")))

PRICE_ALERTS = TableSuite(
    "silver", "price_alerts", key=("id",), required=("user_id", "max_price_cents"),
    in_sets={"rarity": RARITIES}, positive=("max_price_cents",),
    rules=(resolves("user_id", "silver.users", "user"),
           resolves("card_id", "silver.cards", "card")))

SILVER_SUITES: tuple[TableSuite, ...] = (
    USERS, CARDS, CARD_OWNERSHIP, LISTINGS, SALES, AUCTIONS, BIDS, TRADE_OFFERS, NFTS,
    LEDGER_ENTRIES, WATCHLISTS, PRICE_ALERTS)
