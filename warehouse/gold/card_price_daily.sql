-- gold.card_price_daily: one row per (card_id, UTC day) with at least one sale.
--
-- OHLC over ece.silver.sales: open = the day's first sale price, close = the
-- last (by created_at, ties by sale id), high/low = max/min; sales = count,
-- volume_cents = sum of prices. Partitioned by date: one partition reads only
-- that day's sales.
SELECT
    card_id,
    CAST(timezone('UTC', created_at) AS DATE)              AS date,
    arg_min(price_cents, (created_at, id))                 AS open_cents,
    max(price_cents)                                       AS high_cents,
    min(price_cents)                                       AS low_cents,
    arg_max(price_cents, (created_at, id))                 AS close_cents,
    count(*)                                               AS sales,
    CAST(sum(price_cents) AS BIGINT)                       AS volume_cents
FROM ece.silver.sales
WHERE card_id IS NOT NULL AND price_cents IS NOT NULL
    AND created_at >= :lo AND created_at < :hi
GROUP BY card_id, date
ORDER BY date, card_id
