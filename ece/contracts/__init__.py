"""Contracts shared by the API and the stream jobs (cache layout, event ids)."""
