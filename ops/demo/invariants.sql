-- The marketplace invariants `ece demo` checks after its traffic, each of which
-- must be 0, read in one read-only REPEATABLE READ snapshot of the database.
-- One query a block, named after its field of ops.demo.invariants.Invariants.

-- name: ledger_sum_cents
-- Money only moves between accounts: all balances together sum to zero.
SELECT coalesce(sum(balance_cents), 0) FROM ledger_accounts;

-- name: double_sales
-- No listing is sold twice.
SELECT count(*) FROM (
    SELECT listing_id FROM sales GROUP BY listing_id HAVING count(*) > 1
) AS twice;

-- name: negative_balances
-- No user account is below zero.
SELECT count(*) FROM ledger_accounts WHERE user_id IS NOT NULL AND balance_cents < 0;

-- name: unbalanced_transactions
-- Every ledger transaction's entries sum to zero.
SELECT count(*) FROM (
    SELECT transaction_id FROM ledger_entries GROUP BY transaction_id
    HAVING sum(amount_cents) <> 0
) AS bad;
