"""The card errors every domain raises (market, auctions, trades, nfts, images).

One definition per refusal, so a card that is not the caller's is always 403
``card_not_owned``, a card that is listed, in an auction or otherwise busy is
always 409 ``card_unavailable``, and a card that does not exist is reported by
:func:`no_such_card`.
"""

import uuid
from collections.abc import Iterable

from api.core.problems import Problem, not_found, validation_error


def card_not_owned(detail: str = "you do not own this card") -> Problem:
    return Problem(403, "card_not_owned", detail)


def card_unavailable(detail: str) -> Problem:
    return Problem(409, "card_unavailable", detail)


def card_is(status: str) -> Problem:
    """``card_unavailable`` naming the card's status (``in_auction`` -> "in auction")."""
    return card_unavailable(f"the card is {status.replace('_', ' ')}")


def no_such_card(missing: Iterable[uuid.UUID] = (), field: str | None = None) -> Problem:
    """A card that does not exist: 404 ``not_found`` when the card is the resource the
    path names, 422 ``validation_error`` located at ``field`` when a request body refers
    to it (a listing's, an auction's or a trade offer's cards). One rule for every
    domain: the URL names what may be missing; a body that names a missing card is an
    invalid request."""
    if field is None:
        return not_found("card")
    ids = sorted(str(m) for m in missing)
    return validation_error(
        f"{field}: no such card" + (f": {', '.join(ids)}" if ids else ""),
        [{"loc": ["body", field], "msg": f"no such card {i}".strip(), "type": "value_error"}
         for i in (ids or [""])],
    )
