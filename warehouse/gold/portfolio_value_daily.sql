-- gold.portfolio_value_daily: one row per (user_id, UTC day) the user owned at
-- least one card at the end of that day.
--
-- Holdings come from the type-2 ece.silver.card_ownership (the period covering
-- the end of the day); each card is valued at its last sale close on or before
-- that day (ece.gold.card_price_daily), 0 when it has never sold.
-- Partitioned by date, rolling: a partition reads the card_price_daily
-- partitions up to its day (the last close may be any earlier day), so build
-- card_price_daily's partitions first (Dagster orders them by the lineage).
WITH periods AS (
    SELECT
        owner_id,
        card_id,
        CAST(timezone('UTC', valid_from) AS DATE) AS from_day,
        CAST(timezone('UTC', valid_to) AS DATE)   AS to_day
    FROM ece.silver.card_ownership
    WHERE owner_id IS NOT NULL AND valid_from IS NOT NULL AND valid_from < :hi
),
spine AS (
    SELECT CAST(unnest(generate_series(CAST(:start AS TIMESTAMP), CAST(:end AS TIMESTAMP),
                                       INTERVAL 1 DAY)) AS DATE) AS date
),
held AS (
    SELECT s.date, p.owner_id AS user_id, p.card_id
    FROM spine AS s
    JOIN periods AS p ON p.from_day <= s.date AND (p.to_day IS NULL OR p.to_day > s.date)
),
prices AS (
    SELECT card_id, date, close_cents FROM ece.gold.card_price_daily WHERE date <= :end
),
valued AS (
    SELECT h.user_id, h.date, h.card_id, coalesce(c.close_cents, 0) AS value_cents
    FROM held AS h
    ASOF LEFT JOIN prices AS c
        ON c.card_id = h.card_id AND h.date >= c.date
)
SELECT
    user_id,
    date,
    count(*)                         AS card_count,
    CAST(sum(value_cents) AS BIGINT) AS value_cents
FROM valued
GROUP BY user_id, date
ORDER BY date, user_id
