-- silver.sales: the current state of every completed fixed-price sale (price and
-- platform fee in cents), one row per id.
--
-- Same rule as silver.cards: dedupe on (id, lsn) (a change landed twice counts
-- once), keep the latest change per id by LSN, drop ids whose latest change is a
-- delete, and cast bronze text to the source types (uuids UUID, cents BIGINT,
-- timestamps TIMESTAMPTZ).
CREATE OR REPLACE TABLE ece.silver.sales AS
WITH changes AS (
    SELECT *
    FROM ece.bronze.sales
    WHERE id IS NOT NULL
    QUALIFY row_number() OVER (
        PARTITION BY id, lsn ORDER BY _ingested_at, _offset
    ) = 1
),
latest AS (
    SELECT *
    FROM changes
    QUALIFY row_number() OVER (
        PARTITION BY id
        ORDER BY lsn DESC NULLS LAST, ts_ms DESC NULLS LAST, _ingested_at DESC, _offset DESC
    ) = 1
)
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
FROM latest
WHERE op <> 'd';
