"""NFT refusals (card refusals are ``api.cards.errors``)."""

from api.core.problems import Problem, conflict


def already_minted(detail: str) -> Problem:
    return conflict(detail, "already_minted")


class PermanentMintError(Exception):
    """The saga cannot succeed for this NFT whatever it retries (reason goes to ``error``)."""
