"""Shared pieces of ECE: settings, contracts, the `ece` command and the local stack."""
