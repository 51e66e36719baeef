-- silver.cards: the current state of every card, one row per card id.
--
-- Source: ece.bronze.cards (every change event, possibly landed twice when the
-- CDC re-sent a change into a new broker epoch). Deduplicate on the contract's
-- key (lsn, table, primary key), keep the latest change per id by LSN (the
-- commit order in PostgreSQL; the offset only breaks ties between copies), and
-- drop ids whose latest change is a delete. Columns are cast from bronze text
-- to their source types here, in one reviewed place.
CREATE OR REPLACE TABLE ece.silver.cards AS
WITH changes AS (
    SELECT *
    FROM ece.bronze.cards
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
        ORDER BY lsn DESC NULLS LAST, ts_ms DESC NULLS LAST,
                 TRY_CAST(version AS INTEGER) DESC NULLS LAST, _ingested_at DESC, _offset DESC
    ) = 1
)
SELECT
    CAST(id AS UUID)                  AS id,
    name,
    set_name,
    number,
    rarity,
    edition,
    CAST(attributes AS JSON)          AS attributes,
    TRY_CAST(owner_id AS UUID)        AS owner_id,
    status,
    image_object_key,
    TRY_CAST(version AS INTEGER)      AS version,
    TRY_CAST(created_at AS TIMESTAMPTZ) AS created_at,
    TRY_CAST(updated_at AS TIMESTAMPTZ) AS updated_at,
    lsn                               AS _lsn,
    ts_ms                             AS _source_ts_ms,
    _epoch
FROM latest
WHERE op <> 'd';
