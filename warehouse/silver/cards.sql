-- silver.cards: the current state of every card, one row per card id.
--
-- Source: ece.bronze.cards (every change event, possibly landed twice when the
-- CDC re-sent a change into a new broker epoch). current_state (warehouse/
-- macros.sql) deduplicates on the contract's key (lsn, table, primary key),
-- keeps the latest change per id by LSN (the commit order in PostgreSQL; the
-- offset only breaks ties between copies) and drops ids whose latest change is
-- a delete. Columns are cast from bronze text to their source types here, in
-- one reviewed place.
CREATE OR REPLACE TABLE ece.silver.cards AS
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
FROM current_state('ece.bronze.cards');
