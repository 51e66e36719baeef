-- silver.card_ownership: type-2 history of who owned each card, one row per
-- ownership period (card_id, owner_id, valid_from, valid_to, is_current).
--
-- Source: ece.bronze.card_history (one append-only row per transfer: mint, sale,
-- trade, auction, ...). Rows are deduplicated like silver.cards (current_state:
-- on (id, lsn), latest change per id, deletes dropped); each row opens a period
-- for its to_user_id at `at`, and the card's next row (by `at`, then LSN) closes
-- it. The open period (valid_to NULL) is the current owner.
CREATE OR REPLACE TABLE ece.silver.card_ownership AS
WITH history AS (
    SELECT
        TRY_CAST(card_id AS UUID)      AS card_id,
        TRY_CAST(to_user_id AS UUID)   AS owner_id,
        TRY_CAST(from_user_id AS UUID) AS previous_owner_id,
        reason,
        TRY_CAST(reference_id AS UUID) AS reference_id,
        TRY_CAST("at" AS TIMESTAMPTZ)  AS valid_from,
        CAST(id AS UUID)               AS history_id,
        lsn
    FROM current_state('ece.bronze.card_history')
    WHERE card_id IS NOT NULL
)
SELECT
    card_id,
    owner_id,
    valid_from,
    lead(valid_from) OVER w                AS valid_to,
    lead(valid_from) OVER w IS NULL        AS is_current,
    previous_owner_id,
    reason,
    reference_id,
    history_id,
    lsn                                    AS _lsn
FROM history
WINDOW w AS (PARTITION BY card_id ORDER BY valid_from NULLS LAST, lsn NULLS LAST, history_id);
