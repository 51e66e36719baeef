"""Trade offer rules: create, read, accept (atomic swap), reject, cancel, expire.

Lock order (see ``api/cards/ownership.py`` for the whole API's): the offer row
first, then the cards in id order via ``lock_cards``. Listing or auctioning a card
locks the card row too, so "accept" racing "list that card" is serialised on the
card: whoever locks second sees the other's result (a changed owner or a
non-``available`` status) and fails without writing anything.

Expiry is a fact of time, not of a process: a pending offer whose ``expires_at``
has passed is reported (and refused) as ``expired`` on every read even before the
``trade_expirer`` worker has written the status.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.chain import AuditContext, record
from api.cards.errors import card_not_owned, card_unavailable, no_such_card
from api.cards.models import Card
from api.cards.ownership import lock_cards, transfer_card
from api.cards.policy import ensure_movable
from api.cards.service import refresh_after_commit
from api.core.cache import CardCache
from api.core.pagination import paginate
from api.core.problems import forbidden, not_found, validation_error
from api.core.uow import UnitOfWork
from api.trades.errors import offer_not_pending
from api.trades.models import TradeOffer, TradeOfferCard
from api.trades.schemas import DEFAULT_EXPIRY, TradeOfferCreate, TradeOfferOut
from api.users.models import User

SYSTEM = AuditContext(actor_id=None, ip=None)


@dataclass
class Offer:
    """An offer row with its cards: what the service hands back to routers and workers."""

    row: TradeOffer
    offered: list[uuid.UUID]
    requested: list[uuid.UUID]

    def status_at(self, now: datetime) -> str:
        """Pending past its expiry reads as expired, whether or not the worker ran yet."""
        if self.row.status == "pending" and self.row.expires_at <= now:
            return "expired"
        return self.row.status

    def out(self, now: datetime | None = None) -> TradeOfferOut:
        row = self.row
        return TradeOfferOut(
            id=row.id,
            from_user_id=row.from_user_id,
            to_user_id=row.to_user_id,
            offered_card_ids=self.offered,
            requested_card_ids=self.requested,
            message=row.message,
            status=self.status_at(now or datetime.now(UTC)),  # type: ignore[arg-type]
            expires_at=row.expires_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


async def create_offer(
    uow: UnitOfWork, ctx: AuditContext, sender: User, body: TradeOfferCreate
) -> Offer:
    session = uow.session
    if body.to_user_id == sender.id:
        raise validation_error(
            "to_user_id: you cannot send an offer to yourself",
            [{"loc": ["body", "to_user_id"], "msg": "is yourself", "type": "value_error"}],
        )
    if await session.get(User, body.to_user_id) is None:
        raise not_found("user")
    wanted = [*body.offered_card_ids, *body.requested_card_ids]
    cards = {c.id: c for c in await session.scalars(select(Card).where(Card.id.in_(wanted)))}
    missing = [card_id for card_id in wanted if card_id not in cards]
    if missing:
        raise no_such_card(missing, "card_ids")  # body references: 422
    for card_id in body.offered_card_ids:
        if cards[card_id].owner_id != sender.id:
            raise card_not_owned(f"you do not own card {card_id}")
    for card_id in body.requested_card_ids:
        if cards[card_id].owner_id != body.to_user_id:
            raise card_not_owned(f"card {card_id} is not the receiver's")
    busy = sorted(str(c.id) for c in cards.values() if c.status != "available")
    if busy:
        raise card_unavailable(f"cards listed or in auction: {', '.join(busy)}")
    for card_id in wanted:
        ensure_movable(cards[card_id])

    now = datetime.now(UTC)
    offer = TradeOffer(
        id=uuid.uuid4(),
        from_user_id=sender.id,
        to_user_id=body.to_user_id,
        message=body.message or None,
        status="pending",
        expires_at=body.expires_at or now + DEFAULT_EXPIRY,
    )
    session.add(offer)
    await session.flush()
    session.add_all(
        [TradeOfferCard(offer_id=offer.id, card_id=c, side="offered")
         for c in body.offered_card_ids]
        + [TradeOfferCard(offer_id=offer.id, card_id=c, side="requested")
           for c in body.requested_card_ids]
    )
    await session.flush()
    await record(
        session,
        ctx,
        "trade_offer.create",
        "trade_offer",
        offer.id,
        {
            "to_user_id": str(body.to_user_id),
            "offered_card_ids": [str(c) for c in body.offered_card_ids],
            "requested_card_ids": [str(c) for c in body.requested_card_ids],
        },
    )
    return Offer(offer, list(body.offered_card_ids), list(body.requested_card_ids))


async def _with_cards(session: AsyncSession, rows: Sequence[TradeOffer]) -> list[Offer]:
    if not rows:
        return []
    sides: dict[uuid.UUID, dict[str, list[uuid.UUID]]] = {
        r.id: {"offered": [], "requested": []} for r in rows
    }
    links = await session.execute(
        select(TradeOfferCard.offer_id, TradeOfferCard.card_id, TradeOfferCard.side)
        .where(TradeOfferCard.offer_id.in_(list(sides)))
        .order_by(TradeOfferCard.card_id)
    )
    for offer_id, card_id, side in links:
        sides[offer_id][side].append(card_id)
    return [Offer(r, sides[r.id]["offered"], sides[r.id]["requested"]) for r in rows]


def _is_party(offer: TradeOffer, user_id: uuid.UUID) -> bool:
    return user_id in (offer.from_user_id, offer.to_user_id)


async def get_offer(session: AsyncSession, user: User, offer_id: uuid.UUID) -> Offer:
    """Either party sees the offer; to anyone else it does not exist (no id probing)."""
    row = await session.get(TradeOffer, offer_id)
    if row is None or not _is_party(row, user.id):
        raise not_found("trade offer")
    return (await _with_cards(session, [row]))[0]


async def list_offers(
    session: AsyncSession,
    user: User,
    *,
    role: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Offer], str | None]:
    """The caller's offers, newest first; ``status`` filters on the effective status."""
    stmt: Select[Any] = select(TradeOffer)
    if role == "sent":
        stmt = stmt.where(TradeOffer.from_user_id == user.id)
    elif role == "received":
        stmt = stmt.where(TradeOffer.to_user_id == user.id)
    else:
        stmt = stmt.where(or_(TradeOffer.from_user_id == user.id, TradeOffer.to_user_id == user.id))
    now = datetime.now(UTC)
    if status == "pending":
        stmt = stmt.where(TradeOffer.status == "pending", TradeOffer.expires_at > now)
    elif status == "expired":
        stmt = stmt.where(
            or_(
                TradeOffer.status == "expired",
                and_(TradeOffer.status == "pending", TradeOffer.expires_at <= now),
            )
        )
    elif status is not None:
        stmt = stmt.where(TradeOffer.status == status)
    rows, next_cursor = await paginate(
        session, stmt, TradeOffer.created_at, TradeOffer.id, limit=limit, cursor=cursor
    )
    return await _with_cards(session, rows), next_cursor


async def _lock_pending(
    session: AsyncSession, user: User, offer_id: uuid.UUID, party: str
) -> TradeOffer:
    """The offer under its row lock, checked for who may act and that it is still pending."""
    row = await session.scalar(
        select(TradeOffer).where(TradeOffer.id == offer_id).with_for_update()
    )
    if row is None or not _is_party(row, user.id):
        raise not_found("trade offer")
    allowed = row.to_user_id if party == "receiver" else row.from_user_id
    if allowed != user.id:
        raise forbidden(f"only the {party} of the offer may do that")
    if row.status != "pending":
        raise offer_not_pending(row.status)
    if row.expires_at <= datetime.now(UTC):
        raise offer_not_pending("expired")
    return row


async def accept_offer(
    uow: UnitOfWork,
    cache: CardCache,
    ctx: AuditContext,
    user: User,
    offer_id: uuid.UUID,
) -> Offer:
    """Swap every card of the offer in one transaction, or nothing at all (a route with
    an ``Idempotency-Key`` stores its answer with the swap, so a retry replays it)."""
    session = uow.session
    row = await _lock_pending(session, user, offer_id, "receiver")
    offer = (await _with_cards(session, [row]))[0]
    new_owner = {c: row.to_user_id for c in offer.offered}
    new_owner.update({c: row.from_user_id for c in offer.requested})
    cards = await lock_cards(session, list(new_owner))
    if len(cards) != len(new_owner):
        raise card_unavailable("a card of this offer no longer exists")
    offered = set(offer.offered)
    for card in cards:
        owner_at_offer = row.from_user_id if card.id in offered else row.to_user_id
        if card.owner_id != owner_at_offer:
            raise card_unavailable(f"card {card.id} changed owner since the offer")
        if card.status != "available":
            raise card_unavailable(f"card {card.id} is {card.status.replace('_', ' ')}")
        ensure_movable(card)
    for card in cards:
        await transfer_card(session, card, new_owner[card.id], "trade", row.id, None, None)
    row.status = "accepted"
    await session.flush()
    await record(
        session,
        ctx,
        "trade_offer.accept",
        "trade_offer",
        row.id,
        {"card_ids": [str(c.id) for c in cards]},
    )
    refresh_after_commit(uow, cache, *cards)
    return offer


async def _close(
    uow: UnitOfWork,
    ctx: AuditContext,
    user: User,
    offer_id: uuid.UUID,
    party: str,
    status: str,
    action: str,
) -> Offer:
    session = uow.session
    row = await _lock_pending(session, user, offer_id, party)
    row.status = status
    await session.flush()
    await record(session, ctx, action, "trade_offer", row.id)
    return (await _with_cards(session, [row]))[0]


async def reject_offer(
    uow: UnitOfWork, ctx: AuditContext, user: User, offer_id: uuid.UUID
) -> Offer:
    return await _close(uow, ctx, user, offer_id, "receiver", "rejected", "trade_offer.reject")


async def cancel_offer(
    uow: UnitOfWork, ctx: AuditContext, user: User, offer_id: uuid.UUID
) -> Offer:
    return await _close(uow, ctx, user, offer_id, "sender", "cancelled", "trade_offer.cancel")


async def expire_due_offers(uow: UnitOfWork, batch: int = 500) -> list[uuid.UUID]:
    """Mark up to ``batch`` past-due pending offers expired, one audit event each (the
    caller commits ``uow``).

    ``SKIP LOCKED`` lets an accept/reject that holds an offer's lock finish first
    (it re-checks the expiry itself) and lets several expirers run side by side.
    """
    session = uow.session
    due = (
        select(TradeOffer.id)
        .where(TradeOffer.status == "pending", TradeOffer.expires_at <= func.now())
        .order_by(TradeOffer.expires_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    expired = (
        await session.execute(
            update(TradeOffer)
            .where(TradeOffer.id.in_(due), TradeOffer.status == "pending")
            .values(status="expired")
            .returning(TradeOffer.id, TradeOffer.expires_at)
            .execution_options(synchronize_session=False)
        )
    ).all()
    for offer_id, expires_at in expired:
        await record(
            session, SYSTEM, "trade_offer.expire", "trade_offer", offer_id,
            {"expires_at": expires_at.isoformat()},
        )
    return [offer_id for offer_id, _ in expired]
