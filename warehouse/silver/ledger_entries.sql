-- silver.ledger_entries: every double-entry ledger line, one row per entry id,
-- with its transaction's kind (deposit, sale, bid_hold, ...) and its account's
-- kind (user_available, user_held, platform_fees, external_deposits).
--
-- Entries are append-only in PostgreSQL, but the same rule as silver.cards still
-- applies (current_state: dedupe on (id, lsn), latest change per id by LSN,
-- deletes dropped). Transactions and accounts are deduplicated the same way
-- before the join; an entry whose transaction or account has not landed yet (or
-- was deleted) keeps a NULL kind.
CREATE OR REPLACE TABLE ece.silver.ledger_entries AS
SELECT
    CAST(e.id AS UUID)                    AS id,
    TRY_CAST(e.transaction_id AS UUID)    AS transaction_id,
    TRY_CAST(e.account_id AS UUID)        AS account_id,
    TRY_CAST(e.amount_cents AS BIGINT)    AS amount_cents,
    TRY_CAST(e.created_at AS TIMESTAMPTZ) AS created_at,
    t.kind                                AS transaction_kind,
    TRY_CAST(t.reference_id AS UUID)      AS reference_id,
    a.kind                                AS account_kind,
    TRY_CAST(a.user_id AS UUID)           AS account_user_id,
    e.lsn                                 AS _lsn,
    e.ts_ms                               AS _source_ts_ms,
    e._epoch                              AS _epoch
FROM current_state('ece.bronze.ledger_entries') AS e
LEFT JOIN current_state('ece.bronze.ledger_transactions') AS t ON t.id = e.transaction_id
LEFT JOIN current_state('ece.bronze.ledger_accounts') AS a ON a.id = e.account_id;
