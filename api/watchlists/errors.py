"""Watchlist and price-alert refusals (unknown cards are ``api.cards.errors``)."""

from api.core.problems import Problem, not_found


def no_such_alert() -> Problem:
    """Someone else's alert reads as unknown: alert ids cannot be probed."""
    return not_found("price alert")


def not_watched() -> Problem:
    return not_found("watchlist entry")
