-- silver.nfts: the current state of every card's NFT mint record, one row per id.
--
-- Same rule as silver.cards: dedupe on (id, lsn) (a change landed twice counts
-- once), keep the latest change per id by LSN, drop ids whose latest change is a
-- delete, and cast bronze text to the source types (uuids UUID, cents BIGINT,
-- timestamps TIMESTAMPTZ).
CREATE OR REPLACE TABLE ece.silver.nfts AS
SELECT
    CAST(id AS UUID)                     AS id,
    TRY_CAST(card_id AS UUID)            AS card_id,
    status                               AS status,
    mint_address                         AS mint_address,
    metadata_uri                         AS metadata_uri,
    tx_signature                         AS tx_signature,
    owner_address                        AS owner_address,
    error                                AS error,
    TRY_CAST(created_at AS TIMESTAMPTZ)  AS created_at,
    TRY_CAST(updated_at AS TIMESTAMPTZ)  AS updated_at,
    lsn                                  AS _lsn,
    ts_ms                                AS _source_ts_ms,
    _epoch                               AS _epoch
FROM current_state('ece.bronze.nfts');
