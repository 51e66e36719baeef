-- silver.bids: the current state of every auction bid, one row per id.
--
-- Same rule as silver.cards: dedupe on (id, lsn) (a change landed twice counts
-- once), keep the latest change per id by LSN, drop ids whose latest change is a
-- delete, and cast bronze text to the source types (uuids UUID, cents BIGINT,
-- timestamps TIMESTAMPTZ).
CREATE OR REPLACE TABLE ece.silver.bids AS
WITH changes AS (
    SELECT *
    FROM ece.bronze.bids
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
    TRY_CAST(auction_id AS UUID)         AS auction_id,
    TRY_CAST(bidder_id AS UUID)          AS bidder_id,
    TRY_CAST(amount_cents AS BIGINT)     AS amount_cents,
    TRY_CAST(created_at AS TIMESTAMPTZ)  AS created_at,
    lsn                                  AS _lsn,
    ts_ms                                AS _source_ts_ms,
    _epoch                               AS _epoch
FROM latest
WHERE op <> 'd';
