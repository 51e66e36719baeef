"""Shared pieces of ECE: settings, event and cache contracts, the `ece` command and the local stack."""
