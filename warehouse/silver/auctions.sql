-- silver.auctions: the current state of every auction, its current leader and,
-- once ended, its result (sold / no_sale), one row per id.
--
-- Same rule as silver.cards: dedupe on (id, lsn) (a change landed twice counts
-- once), keep the latest change per id by LSN, drop ids whose latest change is a
-- delete, and cast bronze text to the source types (uuids UUID, cents BIGINT,
-- timestamps TIMESTAMPTZ).
CREATE OR REPLACE TABLE ece.silver.auctions AS
SELECT
    CAST(id AS UUID)                         AS id,
    TRY_CAST(card_id AS UUID)                AS card_id,
    TRY_CAST(seller_id AS UUID)              AS seller_id,
    TRY_CAST(start_price_cents AS BIGINT)    AS start_price_cents,
    TRY_CAST(reserve_price_cents AS BIGINT)  AS reserve_price_cents,
    TRY_CAST(min_increment_cents AS BIGINT)  AS min_increment_cents,
    TRY_CAST(current_bid_cents AS BIGINT)    AS current_bid_cents,
    TRY_CAST(current_bidder_id AS UUID)      AS current_bidder_id,
    TRY_CAST(bid_count AS INTEGER)           AS bid_count,
    TRY_CAST(starts_at AS TIMESTAMPTZ)       AS starts_at,
    TRY_CAST(ends_at AS TIMESTAMPTZ)         AS ends_at,
    status                                   AS status,
    result                                   AS result,
    TRY_CAST(created_at AS TIMESTAMPTZ)      AS created_at,
    TRY_CAST(updated_at AS TIMESTAMPTZ)      AS updated_at,
    lsn                                      AS _lsn,
    ts_ms                                    AS _source_ts_ms,
    _epoch                                   AS _epoch
FROM current_state('ece.bronze.auctions');
