"""Background processes that act on the database (``python -m api.workers``).

Each worker is a loop of short transactions through the same services the API
uses; Postgres is the truth, so any number of worker processes can run side by
side and any of them can be killed at any moment.
"""
