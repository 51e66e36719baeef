"""Trade offer refusals (card refusals are ``api.cards.errors``)."""

from api.core.problems import Problem


def offer_not_pending(status: str) -> Problem:
    return Problem(409, "offer_not_pending", f"the offer is {status}, not pending")
