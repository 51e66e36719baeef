"""Clients of the outside systems any domain or worker may call: Solana and Arweave."""
