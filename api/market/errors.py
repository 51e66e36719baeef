"""Marketplace refusals (card refusals are ``api.cards.errors``)."""

from api.core.problems import Problem, conflict


def listing_not_active(status: str) -> Problem:
    return conflict(f"the listing is {status}", "listing_not_active")
