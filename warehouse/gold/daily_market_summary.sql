-- gold.daily_market_summary: one row per UTC day with market activity.
--
-- sales, volume_cents, avg/median price and fees come from ece.silver.sales
-- (fixed-price sales, by created_at); unique buyers/sellers over those sales;
-- new_listings by listing created_at; auctions_ended = auctions whose status is
-- 'ended', on the day of ends_at, and auction_sell_through_rate = sold / ended
-- (NULL on a day without ended auctions); trades_accepted = offers whose current
-- status is 'accepted', on the day of their updated_at (the acceptance).
-- avg and median are rounded to whole cents (half away from zero).
-- Partitioned by date: one partition reads only that day's rows of each input.
WITH sales AS (
    SELECT
        CAST(timezone('UTC', created_at) AS DATE)      AS date,
        count(*)                                       AS sales,
        sum(price_cents)                               AS volume_cents,
        CAST(round(avg(price_cents)) AS BIGINT)        AS avg_price_cents,
        CAST(round(median(price_cents)) AS BIGINT)     AS median_price_cents,
        count(DISTINCT buyer_id)                       AS unique_buyers,
        count(DISTINCT seller_id)                      AS unique_sellers,
        sum(fee_cents)                                 AS fees_cents
    FROM ece.silver.sales
    WHERE created_at >= :lo AND created_at < :hi
    GROUP BY 1
),
listings AS (
    SELECT CAST(timezone('UTC', created_at) AS DATE) AS date, count(*) AS new_listings
    FROM ece.silver.listings
    WHERE created_at >= :lo AND created_at < :hi
    GROUP BY 1
),
auctions AS (
    SELECT
        CAST(timezone('UTC', ends_at) AS DATE)        AS date,
        count(*)                                      AS auctions_ended,
        count(*) FILTER (WHERE result = 'sold')       AS auctions_sold
    FROM ece.silver.auctions
    WHERE status = 'ended' AND ends_at >= :lo AND ends_at < :hi
    GROUP BY 1
),
trades AS (
    SELECT CAST(timezone('UTC', updated_at) AS DATE) AS date, count(*) AS trades_accepted
    FROM ece.silver.trade_offers
    WHERE status = 'accepted' AND updated_at >= :lo AND updated_at < :hi
    GROUP BY 1
),
days AS (
    SELECT date FROM sales
    UNION SELECT date FROM listings
    UNION SELECT date FROM auctions
    UNION SELECT date FROM trades
)
SELECT
    d.date,
    coalesce(s.sales, 0)                                   AS sales,
    CAST(coalesce(s.volume_cents, 0) AS BIGINT)            AS volume_cents,
    s.avg_price_cents,
    s.median_price_cents,
    coalesce(s.unique_buyers, 0)                           AS unique_buyers,
    coalesce(s.unique_sellers, 0)                          AS unique_sellers,
    coalesce(l.new_listings, 0)                            AS new_listings,
    coalesce(a.auctions_ended, 0)                          AS auctions_ended,
    CAST(a.auctions_sold AS DOUBLE) / nullif(a.auctions_ended, 0)
                                                           AS auction_sell_through_rate,
    coalesce(t.trades_accepted, 0)                         AS trades_accepted,
    CAST(coalesce(s.fees_cents, 0) AS BIGINT)              AS fees_cents
FROM days AS d
LEFT JOIN sales AS s USING (date)
LEFT JOIN listings AS l USING (date)
LEFT JOIN auctions AS a USING (date)
LEFT JOIN trades AS t USING (date)
ORDER BY d.date
