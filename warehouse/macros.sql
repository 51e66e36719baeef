-- current_state(bronze_table): the current row of every id of a bronze CDC table,
-- the one rule every current-state silver table is built on.
--
-- Deduplicate on the contract's key (lsn, table, primary key): a change landed
-- twice (at-least-once CDC, or re-sent into a new broker epoch) counts once, the
-- first copy landed kept. Then keep the latest change per id by LSN (the commit
-- order in PostgreSQL; the rest only breaks ties between copies) and drop ids
-- whose latest change is a delete. Columns stay bronze text: each silver file
-- casts them. Called as FROM current_state('ece.bronze.<table>'), so the table
-- name stays in the SQL where Dagster reads the lineage.
--
-- warehouse.lake creates it in the in-memory catalog of every lake connection
-- (shared by its cursors); after USE ece it is memory.current_state.
CREATE OR REPLACE MACRO current_state(bronze_table) AS TABLE
WITH changes AS (
    SELECT *
    FROM query_table(bronze_table)
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
SELECT * FROM latest WHERE op <> 'd'
;
