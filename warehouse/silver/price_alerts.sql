-- silver.price_alerts: every live price alert (a user is told when a new listing
-- matching all its given filters is at or below max_price_cents), one row per id.
--
-- Same rule as silver.cards: dedupe on (id, lsn), keep the latest change per id by
-- LSN, drop ids whose latest change is a delete (a deleted alert is gone), cast.
CREATE OR REPLACE TABLE ece.silver.price_alerts AS
SELECT
    CAST(id AS UUID)                        AS id,
    TRY_CAST(user_id AS UUID)               AS user_id,
    TRY_CAST(max_price_cents AS BIGINT)     AS max_price_cents,
    TRY_CAST(card_id AS UUID)               AS card_id,
    set_name                                AS set_name,
    rarity                                  AS rarity,
    TRY_CAST(created_at AS TIMESTAMPTZ)     AS created_at,
    lsn                                     AS _lsn,
    ts_ms                                   AS _source_ts_ms,
    _epoch                                  AS _epoch
FROM current_state('ece.bronze.price_alerts');
