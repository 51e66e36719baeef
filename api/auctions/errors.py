"""Auction refusals (card refusals are ``api.cards.errors``)."""

from api.core.problems import Problem, conflict


def auction_not_active(detail: str = "the auction is not active") -> Problem:
    return Problem(409, "auction_not_active", detail)


def bid_too_low(minimum: int) -> Problem:
    return Problem(409, "bid_too_low", f"the bid must be at least {minimum} cents",
                   extra={"minimum_cents": minimum})


def auction_has_bids() -> Problem:
    return conflict("the auction has bids and can no longer be cancelled")
