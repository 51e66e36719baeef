"""Changing a card's owner, and the lock order every ownership or money write follows.

Sales, trades and auction settlements all move cards through :func:`transfer_card`
so each transfer leaves the same trail: the new owner and status on ``cards``
(the version trigger bumps ``version``), a ``card_history`` row (which the chain
transfer worker follows), and a ``card_valuations`` row when a price was paid.

GLOBAL LOCK ORDER (deadlock freedom). Every transaction that changes money or
ownership takes its row locks in this order, and never goes back to an earlier
class after taking a later one:

1. the ``idempotency_keys`` row of the request (inserted first by the
   ``api.web.idempotency.IdempotentWrite`` dependency);
2. the business row the request is about, with ``SELECT ... FOR UPDATE``:
   the listing, the auction, or the trade offer (one per transaction);
3. cards, all at once in id order (:func:`lock_cards`);
4. ledger accounts: the users' accounts all at once in id order
   (``api.ledger.service.lock_accounts``; each ledger building block locks its own
   accounts the same way), then the platform account a movement touches
   (``platform_fees``, ``external_deposits``), locked by the entry that moves it.
   Every sale and deposit shares those rows, so move money as the last write
   before the audit event to hold them for the shortest time;
5. nothing for the audit event: ``api.audit.chain.record`` is a plain INSERT
   (the sealer worker chains committed events afterwards, ``api/audit/sealer.py``).

Two transactions that want overlapping rows therefore queue on the first row they
share instead of each holding what the other needs. A purchase racing a cancel of
the same listing queues on the listing; a trade accept racing a listing of one of
its cards queues on the card (the listing path locks the card before inserting
the listing).

This is the one statement of the order; services and ``api.core.uow`` refer to it.

Neither function commits: the caller's unit of work (``api.core.uow``) holds the
locks until its single COMMIT, and ``api.cards.service.refresh_after_commit``
registers the card cache refresh as an after-commit hook.
"""

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.cards.models import HISTORY_REASONS, VALUATION_SOURCES, Card, CardHistory, CardValuation


async def lock_cards(session: AsyncSession, card_ids: Iterable[uuid.UUID]) -> list[Card]:
    """Lock the cards that exist among ``card_ids`` in id order and return them fresh.

    ``populate_existing`` refreshes objects already in the session, so the caller
    checks owner and status as they are now, not as they were first read. Missing
    ids are simply absent from the result (compare lengths to detect them).
    """
    ids = sorted(set(card_ids))
    if not ids:
        return []
    stmt = (
        select(Card)
        .where(Card.id.in_(ids))
        .order_by(Card.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list((await session.scalars(stmt)).all())


async def transfer_card(
    session: AsyncSession,
    card: Card,
    to_user_id: uuid.UUID,
    reason: str,
    reference_id: uuid.UUID | None,
    value_cents: int | None,
    value_source: str | None,
) -> CardHistory:
    """Give ``card`` (locked by the caller) to ``to_user_id`` and make it ``available``.

    Appends the ``card_history`` row and, when ``value_cents`` is given, a
    ``card_valuations`` row with ``value_source`` (``sale|auction|appraisal``), so
    the portfolio value follows the last price paid.
    """
    if reason not in HISTORY_REASONS or reason == "issue":
        raise ValueError(f"not a transfer reason: {reason!r}")
    if to_user_id == card.owner_id:
        raise ValueError("card already belongs to the recipient")
    if value_cents is not None and value_source not in VALUATION_SOURCES:
        raise ValueError(f"unknown valuation source {value_source!r}")
    from_user_id = card.owner_id
    card.owner_id = to_user_id
    card.status = "available"
    await session.flush()  # the trigger bumps version; the ORM reads it back
    history = await session.scalar(
        insert(CardHistory)
        .values(
            id=uuid.uuid4(),
            card_id=card.id,
            from_user_id=from_user_id,
            to_user_id=to_user_id,
            reason=reason,
            reference_id=reference_id,
        )
        .returning(CardHistory)
    )
    assert history is not None
    if value_cents is not None:
        await record_valuation(session, card.id, value_cents, value_source or "sale")
    return history


async def record_valuation(
    session: AsyncSession, card_id: uuid.UUID, value_cents: int, source: str
) -> CardValuation:
    """Append a valuation (``value_cents > 0`` is also a CHECK)."""
    if value_cents <= 0:
        raise ValueError("a valuation is positive")
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "card_id": card_id,
        "value_cents": value_cents,
        "source": source,
    }
    valuation = await session.scalar(
        insert(CardValuation).values(**values).returning(CardValuation)
    )
    assert valuation is not None
    return valuation
