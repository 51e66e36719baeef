-- silver.listings: the current state of every marketplace listing (active, sold,
-- cancelled), one row per id.
--
-- Same rule as silver.cards: dedupe on (id, lsn) (a change landed twice counts
-- once), keep the latest change per id by LSN, drop ids whose latest change is a
-- delete, and cast bronze text to the source types (uuids UUID, cents BIGINT,
-- timestamps TIMESTAMPTZ).
CREATE OR REPLACE TABLE ece.silver.listings AS
SELECT
    CAST(id AS UUID)                     AS id,
    TRY_CAST(card_id AS UUID)            AS card_id,
    TRY_CAST(seller_id AS UUID)          AS seller_id,
    TRY_CAST(price_cents AS BIGINT)      AS price_cents,
    status                               AS status,
    TRY_CAST(created_at AS TIMESTAMPTZ)  AS created_at,
    TRY_CAST(updated_at AS TIMESTAMPTZ)  AS updated_at,
    lsn                                  AS _lsn,
    ts_ms                                AS _source_ts_ms,
    _epoch                               AS _epoch
FROM current_state('ece.bronze.listings');
