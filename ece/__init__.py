"""ECE's foundation: settings, logging, contracts, Kafka and retry helpers.

Imports no other package of the project (api, streaming, ops, ...).
"""
