-- silver.trade_offers: the current state of every trade offer between two users
-- (status pending/accepted/rejected/cancelled/expired), one row per id.
--
-- Same rule as silver.cards: dedupe on (id, lsn) (a change landed twice counts
-- once), keep the latest change per id by LSN, drop ids whose latest change is a
-- delete, and cast bronze text to the source types (uuids UUID, cents BIGINT,
-- timestamps TIMESTAMPTZ).
CREATE OR REPLACE TABLE ece.silver.trade_offers AS
SELECT
    CAST(id AS UUID)                     AS id,
    TRY_CAST(from_user_id AS UUID)       AS from_user_id,
    TRY_CAST(to_user_id AS UUID)         AS to_user_id,
    message                              AS message,
    status                               AS status,
    TRY_CAST(expires_at AS TIMESTAMPTZ)  AS expires_at,
    TRY_CAST(created_at AS TIMESTAMPTZ)  AS created_at,
    TRY_CAST(updated_at AS TIMESTAMPTZ)  AS updated_at,
    lsn                                  AS _lsn,
    ts_ms                                AS _source_ts_ms,
    _epoch                               AS _epoch
FROM current_state('ece.bronze.trade_offers');
