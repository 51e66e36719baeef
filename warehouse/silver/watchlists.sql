-- silver.watchlists: who watches which card now, one row per (user_id, card_id).
--
-- The table's key is (user_id, card_id), not id, so this is current_state()'s rule
-- spelled out for that key: dedupe on (key, lsn) (a change landed twice counts
-- once), keep the latest change per key by LSN, drop keys whose latest change is a
-- delete (unwatched), cast bronze text to the source types.
CREATE OR REPLACE TABLE ece.silver.watchlists AS
WITH changes AS (
    SELECT *
    FROM ece.bronze.watchlists
    WHERE user_id IS NOT NULL AND card_id IS NOT NULL
    QUALIFY row_number() OVER (
        PARTITION BY user_id, card_id, lsn ORDER BY _ingested_at, _offset
    ) = 1
),
latest AS (
    SELECT *
    FROM changes
    QUALIFY row_number() OVER (
        PARTITION BY user_id, card_id
        ORDER BY lsn DESC NULLS LAST, ts_ms DESC NULLS LAST, _ingested_at DESC, _offset DESC
    ) = 1
)
SELECT
    CAST(user_id AS UUID)                   AS user_id,
    CAST(card_id AS UUID)                   AS card_id,
    TRY_CAST(created_at AS TIMESTAMPTZ)     AS created_at,
    lsn                                     AS _lsn,
    ts_ms                                   AS _source_ts_ms,
    _epoch                                  AS _epoch
FROM latest
WHERE op <> 'd';
