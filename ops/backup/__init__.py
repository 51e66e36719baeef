"""Backups of everything that holds state, taken while the platform runs, and restores.

A backup is a folder::

    manifest.json            what, when, from where, and the sha256 of every file
    db/roles.sql             the cluster's roles (pg_dumpall --roles-only)
    db/<app db>.dump         the application database (pg_dump custom format)
    db/<lake db>.dump        the DuckLake catalog database (pg_dump custom format)
    lake/...                 every Parquet file the dumped catalog references
    solana/, arweave/        the local chain's snapshot and the Arweave gateway's data
    secrets/                 data/secrets as it is (mode 0600 files, folder 0700)

Consistency (``ops.backup.create``): the lake catalog is dumped inside an exported
snapshot, and the list of files to copy is read in that same snapshot, so the copy
holds exactly the files the dumped catalog references. DuckLake writes a Parquet file
before the catalog commit that references it and never rewrites one in place; files
only disappear through ``ducklake_expire_snapshots``/cleanup (which nothing here runs),
so copying them after the dump is consistent. The lake is dumped before the application
database (the lake is derived from it by CDC: it is never ahead), the chain and
Arweave after it (they may be ahead; the mint saga is idempotent and keyed by mint).
"""
