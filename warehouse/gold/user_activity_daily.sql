-- gold.user_activity_daily: one row per (user_id, UTC day) with any activity.
--
-- purchases / spent_cents: sales as buyer (price paid); sales / earned_cents:
-- sales as seller (price minus the platform fee, what the seller received);
-- bids: bids placed; listings: listings created; trades: accepted trade offers
-- the user was part of (either side), on the day of acceptance (updated_at).
-- Partitioned by date.
WITH events AS (
    SELECT buyer_id AS user_id, CAST(timezone('UTC', created_at) AS DATE) AS date,
           1 AS purchases, 0 AS sales, 0 AS bids, 0 AS listings, 0 AS trades,
           price_cents AS spent_cents, 0 AS earned_cents
    FROM ece.silver.sales
    WHERE created_at >= :lo AND created_at < :hi
    UNION ALL
    SELECT seller_id, CAST(timezone('UTC', created_at) AS DATE),
           0, 1, 0, 0, 0, 0, price_cents - coalesce(fee_cents, 0)
    FROM ece.silver.sales
    WHERE created_at >= :lo AND created_at < :hi
    UNION ALL
    SELECT bidder_id, CAST(timezone('UTC', created_at) AS DATE), 0, 0, 1, 0, 0, 0, 0
    FROM ece.silver.bids
    WHERE created_at >= :lo AND created_at < :hi
    UNION ALL
    SELECT seller_id, CAST(timezone('UTC', created_at) AS DATE), 0, 0, 0, 1, 0, 0, 0
    FROM ece.silver.listings
    WHERE created_at >= :lo AND created_at < :hi
    UNION ALL
    SELECT unnest([from_user_id, to_user_id]), CAST(timezone('UTC', updated_at) AS DATE),
           0, 0, 0, 0, 1, 0, 0
    FROM ece.silver.trade_offers
    WHERE status = 'accepted' AND updated_at >= :lo AND updated_at < :hi
)
SELECT
    user_id,
    date,
    CAST(sum(purchases) AS BIGINT)    AS purchases,
    CAST(sum(sales) AS BIGINT)        AS sales,
    CAST(sum(bids) AS BIGINT)         AS bids,
    CAST(sum(listings) AS BIGINT)     AS listings,
    CAST(sum(trades) AS BIGINT)       AS trades,
    CAST(sum(spent_cents) AS BIGINT)  AS spent_cents,
    CAST(sum(earned_cents) AS BIGINT) AS earned_cents
FROM events
WHERE user_id IS NOT NULL AND date IS NOT NULL
GROUP BY user_id, date
ORDER BY date, user_id
