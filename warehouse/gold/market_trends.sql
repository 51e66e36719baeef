-- gold.market_trends: one row per (UTC day, rarity, set_name) with sales.
--
-- Sales from ece.silver.sales, classified by the card's current rarity and set
-- (ece.silver.cards). volume_cents and avg_price_cents are the day's;
-- avg_price_7d_cents / avg_price_30d_cents are volume-weighted averages over the
-- trailing 7 / 30 calendar days ending on the row's day (sum of volume / number
-- of sales); momentum_7d = avg_price_7d / avg_price_30d - 1. Averages are
-- rounded to whole cents; momentum uses the unrounded averages.
-- Partitioned by date, rolling: a partition reads the 30 days of sales its
-- windows need (:lo_30d = 29 days before the first day built).
WITH daily AS (
    SELECT
        CAST(timezone('UTC', s.created_at) AS DATE) AS date,
        c.rarity,
        c.set_name,
        count(*)                                    AS sales,
        sum(s.price_cents)                          AS volume_cents
    FROM ece.silver.sales AS s
    JOIN ece.silver.cards AS c ON c.id = s.card_id
    WHERE s.price_cents IS NOT NULL AND s.created_at >= :lo_30d AND s.created_at < :hi
    GROUP BY ALL
),
windows AS (
    SELECT
        *,
        sum(volume_cents) OVER w7 / sum(sales) OVER w7   AS avg_7d,
        sum(volume_cents) OVER w30 / sum(sales) OVER w30 AS avg_30d
    FROM daily
    WINDOW
        w7 AS (PARTITION BY rarity, set_name ORDER BY date
               RANGE BETWEEN INTERVAL 6 DAYS PRECEDING AND CURRENT ROW),
        w30 AS (PARTITION BY rarity, set_name ORDER BY date
                RANGE BETWEEN INTERVAL 29 DAYS PRECEDING AND CURRENT ROW)
)
SELECT
    date,
    rarity,
    set_name,
    CAST(volume_cents AS BIGINT)                          AS volume_cents,
    sales,
    CAST(round(volume_cents / sales) AS BIGINT)           AS avg_price_cents,
    CAST(round(avg_7d) AS BIGINT)                         AS avg_price_7d_cents,
    CAST(round(avg_30d) AS BIGINT)                        AS avg_price_30d_cents,
    avg_7d / nullif(avg_30d, 0) - 1                       AS momentum_7d
FROM windows
WHERE date BETWEEN :start AND :end
ORDER BY date, rarity, set_name
