"""Contracts shared by the API, the stream jobs and the lake: topics, card cache, DLQ record."""
