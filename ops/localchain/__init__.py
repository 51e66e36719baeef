"""A local Solana JSON-RPC node over solders' in-process LiteSVM.

No Solana validator can be installed on the project's machines, yet the mint
saga and reconciliation must talk to a real JSON-RPC endpoint through the real
``solana`` AsyncClient. This package answers the subset of the Solana RPC API
those clients use, with solders' own response types, and keeps its accounts on
disk so the chain survives restarts. Entry point: ``python -m ops.localchain``.
"""
