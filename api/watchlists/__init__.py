"""Watchlists and price alerts: what makes the stream jobs notify a user of a new listing."""
