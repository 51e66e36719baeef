"""What sits above the domains: the app factory, idempotency, rate limits and router aliases.

These HTTP concerns need a user (a domain), so they cannot live in ``api.core``.
"""
