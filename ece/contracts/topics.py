"""Which tables are captured, under which topic names, and what never leaves Postgres.

The single list that the migration (publication), the CDC runner (table include
list, column exclusions), the topic JSON Schemas and the bronze landing all read,
so adding a table to the stream is one edit here plus its migration.
"""

from __future__ import annotations

# Tables in the Debezium publication, in dependency order. Tables holding secrets
# (refresh_sessions, custody_keys, idempotency_keys, push_subscriptions,
# wallet_challenges) are deliberately absent.
CAPTURED_TABLES: tuple[str, ...] = (
    "users",
    "wallets",
    "cards",
    "card_history",
    "card_valuations",
    "ledger_accounts",
    "ledger_transactions",
    "ledger_entries",
    "listings",
    "sales",
    "trade_offers",
    "trade_offer_cards",
    "auctions",
    "bids",
    "nfts",
    "nft_transactions",
    "notifications",
    "audit_events",
    "watchlists",
    "price_alerts",
)

# Columns that must never appear on a topic or in the warehouse.
EXCLUDED_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("password_hash",),
}

PUBLICATION = "ece_cdc"
SLOT = "ece_cdc"
SCHEMA = "public"

DEFAULT_PREFIX = "ece"  # Settings.topic_prefix's default


def topic(name: str, prefix: str = DEFAULT_PREFIX) -> str:
    """``<prefix>.<name>``: every topic name is derived from the one prefix."""
    return f"{prefix}.{name}"


def cdc_topic(table: str, prefix: str = DEFAULT_PREFIX) -> str:
    """``<prefix>.public.<table>``: the Debezium topic of one captured table."""
    return topic(f"{SCHEMA}.{table}", prefix)


def captured_topics(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """The CDC topic of every captured table."""
    return [cdc_topic(t, prefix) for t in CAPTURED_TABLES]


# Derived topics written by the stream jobs and workers (docs/topics.md).
def market_activity_topic(prefix: str = DEFAULT_PREFIX) -> str:
    return topic("market.activity", prefix)


def market_stats_topic(prefix: str = DEFAULT_PREFIX) -> str:
    return topic("market.stats", prefix)


def notifications_topic(prefix: str = DEFAULT_PREFIX) -> str:
    return topic("notifications", prefix)


def chain_reconciliation_topic(prefix: str = DEFAULT_PREFIX) -> str:
    """Verdicts of the chain reconciliation, keyed by mint address."""
    return topic("chain.reconciliation", prefix)


def dlq_topic(prefix: str = DEFAULT_PREFIX) -> str:
    """Dead letters (:mod:`ece.contracts.dlq`), keyed by source topic."""
    return topic("dlq", prefix)


# The names under the default prefix, for documentation and tests only: code takes
# the prefix from Settings.topic_prefix and calls the functions above.
MARKET_ACTIVITY = market_activity_topic()
MARKET_STATS = market_stats_topic()
NOTIFICATIONS = notifications_topic()
CHAIN_RECONCILIATION = chain_reconciliation_topic()
DLQ = dlq_topic()
