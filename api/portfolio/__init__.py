"""Portfolios: what a user's cards are worth (latest valuation of each card)."""
