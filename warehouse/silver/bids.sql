-- silver.bids: the current state of every auction bid, one row per id.
--
-- Same rule as silver.cards: dedupe on (id, lsn) (a change landed twice counts
-- once), keep the latest change per id by LSN, drop ids whose latest change is a
-- delete, and cast bronze text to the source types (uuids UUID, cents BIGINT,
-- timestamps TIMESTAMPTZ).
CREATE OR REPLACE TABLE ece.silver.bids AS
SELECT
    CAST(id AS UUID)                     AS id,
    TRY_CAST(auction_id AS UUID)         AS auction_id,
    TRY_CAST(bidder_id AS UUID)          AS bidder_id,
    TRY_CAST(amount_cents AS BIGINT)     AS amount_cents,
    TRY_CAST(created_at AS TIMESTAMPTZ)  AS created_at,
    lsn                                  AS _lsn,
    ts_ms                                AS _source_ts_ms,
    _epoch                               AS _epoch
FROM current_state('ece.bronze.bids');
