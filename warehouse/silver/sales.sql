-- silver.sales: the current state of every completed fixed-price sale (price and
-- platform fee in cents), one row per id.
--
-- Same rule as silver.cards: dedupe on (id, lsn) (a change landed twice counts
-- once), keep the latest change per id by LSN, drop ids whose latest change is a
-- delete, and cast bronze text to the source types (uuids UUID, cents BIGINT,
-- timestamps TIMESTAMPTZ).
CREATE OR REPLACE TABLE ece.silver.sales AS
SELECT
    CAST(id AS UUID)                     AS id,
    TRY_CAST(listing_id AS UUID)         AS listing_id,
    TRY_CAST(card_id AS UUID)            AS card_id,
    TRY_CAST(buyer_id AS UUID)           AS buyer_id,
    TRY_CAST(seller_id AS UUID)          AS seller_id,
    TRY_CAST(price_cents AS BIGINT)      AS price_cents,
    TRY_CAST(fee_cents AS BIGINT)        AS fee_cents,
    TRY_CAST(created_at AS TIMESTAMPTZ)  AS created_at,
    lsn                                  AS _lsn,
    ts_ms                                AS _source_ts_ms,
    _epoch                               AS _epoch
FROM current_state('ece.bronze.sales');
