-- gold.financial_report_daily: one row per UTC day with sales or ledger entries.
--
-- gross_volume_cents and fees_cents: sum of price and fee over ece.silver.sales
-- (by created_at). deposits_cents: money credited by 'deposit' ledger
-- transactions (their positive entries, by entry created_at). ledger_balanced:
-- true when all of the day's ledger entries sum to zero (every transaction is
-- balanced, so a false here means missing or corrupt entries); true on a day
-- without entries. Partitioned by date.
WITH sales AS (
    SELECT
        CAST(timezone('UTC', created_at) AS DATE) AS date,
        sum(price_cents)                          AS gross_volume_cents,
        sum(fee_cents)                            AS fees_cents
    FROM ece.silver.sales
    WHERE created_at >= :lo AND created_at < :hi
    GROUP BY 1
),
ledger AS (
    SELECT
        CAST(timezone('UTC', created_at) AS DATE)  AS date,
        sum(amount_cents) FILTER (WHERE transaction_kind = 'deposit' AND amount_cents > 0)
                                                   AS deposits_cents,
        sum(amount_cents)                          AS net_cents,
        count(*)                                   AS entries
    FROM ece.silver.ledger_entries
    WHERE created_at >= :lo AND created_at < :hi
    GROUP BY 1
),
days AS (
    SELECT date FROM sales
    UNION SELECT date FROM ledger
)
SELECT
    d.date,
    CAST(coalesce(s.gross_volume_cents, 0) AS BIGINT) AS gross_volume_cents,
    CAST(coalesce(s.fees_cents, 0) AS BIGINT)         AS fees_cents,
    CAST(coalesce(l.deposits_cents, 0) AS BIGINT)     AS deposits_cents,
    coalesce(l.net_cents, 0) = 0                      AS ledger_balanced,
    CAST(coalesce(l.net_cents, 0) AS BIGINT)          AS ledger_net_cents,
    coalesce(l.entries, 0)                            AS ledger_entries
FROM days AS d
LEFT JOIN sales AS s USING (date)
LEFT JOIN ledger AS l USING (date)
ORDER BY d.date
