"""The tamper-evident audit log (hash chain over append-only rows)."""
