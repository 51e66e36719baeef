-- silver.users: the current state of every user, one row per user id, no secrets.
--
-- Same rule as silver.cards: dedupe on (id, lsn), latest change per id by LSN,
-- deleted users dropped. Columns are listed explicitly (never SELECT *), so a
-- secret column that ever reached bronze would still stop here.
CREATE OR REPLACE TABLE ece.silver.users AS
SELECT
    CAST(id AS UUID)                    AS id,
    email,
    username,
    role,
    custody_address,
    TRY_CAST(created_at AS TIMESTAMPTZ) AS created_at,
    TRY_CAST(updated_at AS TIMESTAMPTZ) AS updated_at,
    lsn                                 AS _lsn,
    _epoch
FROM current_state('ece.bronze.users');
