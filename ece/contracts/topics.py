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
)

# Columns that must never appear on a topic or in the warehouse.
EXCLUDED_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("password_hash",),
}

PUBLICATION = "ece_cdc"
SLOT = "ece_cdc"
SCHEMA = "public"

# Derived topics written by the stream jobs (contract/events.md).
MARKET_ACTIVITY = "ece.market.activity"
MARKET_STATS = "ece.market.stats"
NOTIFICATIONS = "ece.notifications"
CHAIN_RECONCILIATION = "ece.chain.reconciliation"
DLQ = "ece.dlq"


def cdc_topic(table: str, prefix: str = "ece") -> str:
    """``ece.public.<table>``: the Debezium topic of one captured table."""
    return f"{prefix}.{SCHEMA}.{table}"
