"""Double-entry ledger: balances only ever move through balanced transactions."""
