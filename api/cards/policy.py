"""Attribute-based rules on moving a card: the one place every ownership-moving
service asks (security issue #12, item 9).

A card whose ``attributes.locked`` is ``true`` (vaulted, under dispute; set by an
admin with ``PATCH /cards/{id}``) cannot change hands. :func:`ensure_movable`
raises 409 ``card_unavailable`` ("the card is locked") and is called right after
the card rows are locked (``api.cards.ownership.lock_cards``), beside the status
checks, so the lock order of ``api/cards/ownership.py`` is unchanged:

- listing (``api.market.service.create_listing``) and starting an auction
  (``api.auctions.service.create_auction``) are refused;
- a trade offer is refused when a locked card is offered or requested
  (``create_offer``), and a pending offer involving a card locked since is refused
  at ``accept_offer``;
- a card locked *after* it was listed: the listing stays active (the seller or an
  admin may cancel it) but a purchase is refused with ``card_unavailable`` and
  nothing is written;
- a card locked *after* its auction started: new bids are refused with
  ``card_unavailable`` (the card row is read under lock after the auction row, in
  the usual order), and the auction closer settles the auction as ``no_sale``
  (the leading bid's hold is released, the card stays with the seller, status
  ``available``, still locked) instead of moving it.

Unlocking is ``attributes.locked`` set to anything but ``true`` or removed.
"""

from api.cards.errors import card_unavailable
from api.cards.models import Card


def is_locked(card: Card) -> bool:
    """True when an admin has locked the card (``attributes.locked`` is ``true``)."""
    return bool(card.attributes) and card.attributes.get("locked") is True


def ensure_movable(card: Card) -> None:
    """Raise 409 ``card_unavailable`` when ``card`` may not change hands right now.

    Status checks (listed, in auction) stay with each service; this is the
    attribute rule every ownership-moving path shares.
    """
    if is_locked(card):
        raise card_unavailable(f"card {card.id} is locked")
