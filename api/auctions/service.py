"""Auction rules: start, bid (with held funds and anti-sniping), cancel, read, settle.

Lock order (the API-wide order is documented in ``api/cards/ownership.py``): the
auction row ``FOR UPDATE`` first, then the card, then ledger accounts in id order
(``lock_accounts`` with every user the transaction moves money for), then the
audit chain. A bid therefore queues on its auction: bids on one auction are
applied one after another, each sees the leader the previous one left, and the
amount held across all bidders always equals the current leading bid.

Closing is done by the ``auction_closer`` worker (``api.auctions.closing``); bids
past ``ends_at`` are refused even before the closer got to the auction, so the
outcome never depends on the closer's delay. Redis only carries the end-time hints
of ``api.auctions.ends``.

Writes take the caller's unit of work (``api.core.uow``) and never commit; the
card cache and the end hints follow as after-commit hooks.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.auctions.ends import announce_end, forget_end
from api.auctions.errors import auction_has_bids, auction_not_active, bid_too_low
from api.auctions.models import Auction, Bid
from api.auctions.schemas import AuctionCreate
from api.audit.chain import AuditContext, record
from api.cards.errors import card_is, card_not_owned, card_unavailable, no_such_card
from api.cards.ownership import lock_cards
from api.cards.policy import ensure_movable
from api.cards.service import refresh_after_commit
from api.core.cache import CardCache
from api.core.pagination import paginate
from api.core.problems import forbidden, not_found
from api.core.uow import UnitOfWork
from api.ledger import service as ledger
from api.users.models import User

ANTI_SNIPING = timedelta(seconds=60)


def minimum_bid(auction: Auction) -> int:
    if auction.current_bid_cents is None:
        return auction.start_price_cents
    return auction.current_bid_cents + auction.min_increment_cents


async def _db_now(session: AsyncSession) -> datetime:
    """The database clock at this moment (not the transaction start), the one ``ends_at``
    is compared with everywhere, so API and closer agree on when an auction ended."""
    now = await session.scalar(select(func.clock_timestamp()))
    assert now is not None
    return now


# --- start, cancel ----------------------------------------------------------------


def _after_commit_end(uow: UnitOfWork, redis: Redis | None, auction: Auction, *,
                      forget: bool = False) -> None:
    """Announce (or forget) the auction's end once the change is committed."""
    auction_id, ends_at = auction.id, auction.ends_at
    if redis is None:
        return

    async def hint() -> None:
        if forget:
            await forget_end(redis, auction_id)
        else:
            await announce_end(redis, auction_id, ends_at)

    uow.after_commit(hint)


async def create_auction(
    uow: UnitOfWork,
    cache: CardCache,
    ctx: AuditContext,
    seller: User,
    body: AuctionCreate,
) -> Auction:
    session = uow.session
    cards = await lock_cards(session, [body.card_id])
    if not cards:
        raise no_such_card([body.card_id], "card_id")  # a body reference: 422
    card = cards[0]
    if card.owner_id != seller.id:
        raise card_not_owned()
    if card.status != "available":
        raise card_is(card.status)
    ensure_movable(card)
    now = await _db_now(session)
    auction = Auction(
        id=uuid.uuid4(),
        card_id=card.id,
        seller_id=seller.id,
        start_price_cents=body.start_price_cents,
        reserve_price_cents=body.reserve_price_cents,
        min_increment_cents=body.min_increment_cents,
        starts_at=now,
        ends_at=now + timedelta(seconds=body.duration_seconds),
        status="active",
        bid_count=0,
    )
    session.add(auction)
    card.status = "in_auction"
    try:
        await session.flush()
    except IntegrityError as exc:  # uq_auctions_active_card: belt and braces behind the lock
        raise card_unavailable("the card is already in an auction") from exc
    await record(
        session,
        ctx,
        "auction.create",
        "auction",
        auction.id,
        {
            "card_id": str(card.id),
            "start_price_cents": body.start_price_cents,
            "reserve_price_cents": body.reserve_price_cents,
            "min_increment_cents": body.min_increment_cents,
            "ends_at": auction.ends_at.isoformat(),
        },
    )
    refresh_after_commit(uow, cache, card)
    _after_commit_end(uow, cache.redis, auction)
    return auction


async def _lock_auction(session: AsyncSession, auction_id: uuid.UUID) -> Auction:
    auction = await session.scalar(
        select(Auction)
        .where(Auction.id == auction_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if auction is None:
        raise not_found("auction")
    return auction


async def cancel_auction(
    uow: UnitOfWork, cache: CardCache, ctx: AuditContext, user: User, auction_id: uuid.UUID
) -> Auction:
    """The seller withdraws the card, only while nobody has bid (bids hold money)."""
    session = uow.session
    auction = await _lock_auction(session, auction_id)
    if auction.seller_id != user.id:
        raise forbidden("only the seller may cancel the auction")
    if auction.status != "active" or auction.ends_at <= await _db_now(session):
        raise auction_not_active()
    if auction.bid_count > 0:
        raise auction_has_bids()
    card = (await lock_cards(session, [auction.card_id]))[0]
    auction.status = "cancelled"
    card.status = "available"
    await session.flush()
    await record(session, ctx, "auction.cancel", "auction", auction.id,
                 {"card_id": str(card.id)})
    refresh_after_commit(uow, cache, card)
    _after_commit_end(uow, cache.redis, auction, forget=True)
    return auction


# --- bids ---------------------------------------------------------------------------


@dataclass
class PlacedBid:
    bid: Bid
    auction: Auction
    extended: bool


async def place_bid(
    uow: UnitOfWork,
    ctx: AuditContext,
    bidder: User,
    auction_id: uuid.UUID,
    amount_cents: int,
    *,
    redis: Redis | None = None,
) -> PlacedBid:
    """Hold the new leading bid, release the previous leader's hold, one transaction.

    A route with an ``Idempotency-Key`` stores its answer in the same unit of work,
    so a retried bid is answered, not placed twice.
    """
    session = uow.session
    auction = await _lock_auction(session, auction_id)
    if auction.seller_id == bidder.id:
        raise forbidden("you cannot bid on your own auction")
    now = await _db_now(session)
    if auction.status != "active" or auction.ends_at <= now:
        raise auction_not_active("the auction has ended" if auction.status != "cancelled"
                                 else "the auction was cancelled")
    # The card after the auction, as in the lock order: a card locked since the
    # auction started takes no new bids (the closer ends it as no_sale).
    ensure_movable((await lock_cards(session, [auction.card_id]))[0])
    minimum = minimum_bid(auction)
    if amount_cents < minimum:
        raise bid_too_low(minimum)

    previous_leader, previous_amount = auction.current_bidder_id, auction.current_bid_cents
    if previous_leader is not None and previous_leader != bidder.id:
        # Two users' accounts: lock all four in id order before moving any money.
        await ledger.lock_accounts(session, [bidder.id, previous_leader])
    if previous_leader is not None and previous_amount is not None:
        await ledger.release(session, previous_leader, previous_amount, "bid_release", auction.id)
    await ledger.hold(session, bidder.id, amount_cents, "bid_hold", auction.id)

    bid = Bid(
        id=uuid.uuid4(),
        auction_id=auction.id,
        bidder_id=bidder.id,
        amount_cents=amount_cents,
        created_at=now,  # the lock-holding moment: bids of one auction sort in bid order
    )
    session.add(bid)
    auction.current_bid_cents = amount_cents
    auction.current_bidder_id = bidder.id
    auction.bid_count = auction.bid_count + 1
    extended = auction.ends_at - now < ANTI_SNIPING
    if extended:
        auction.ends_at = now + ANTI_SNIPING
    await session.flush()
    await record(
        session,
        ctx,
        "auction.bid",
        "auction",
        auction.id,
        {
            "bid_id": str(bid.id),
            "amount_cents": amount_cents,
            "previous_bidder_id": str(previous_leader) if previous_leader else None,
            "ends_at": auction.ends_at.isoformat() if extended else None,
        },
    )
    if extended:
        _after_commit_end(uow, redis, auction)
    return PlacedBid(bid, auction, extended)


# --- reads --------------------------------------------------------------------------


async def get_auction(session: AsyncSession, auction_id: uuid.UUID) -> Auction:
    auction = await session.get(Auction, auction_id)
    if auction is None:
        raise not_found("auction")
    return auction


async def list_auctions(
    session: AsyncSession,
    *,
    status: str | None,
    card_id: uuid.UUID | None,
    seller_id: uuid.UUID | None,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Auction], str | None]:
    """Newest first by default; ``sort=ends_at`` (soonest first) or ``-ends_at``.

    The ``ends_at`` keyset is stable under inserts; an anti-sniping extension moves
    an auction within the order, as it should (it really ends later now).
    """
    stmt: Select[Any] = select(Auction)
    if status is not None:
        stmt = stmt.where(Auction.status == status)
    if card_id is not None:
        stmt = stmt.where(Auction.card_id == card_id)
    if seller_id is not None:
        stmt = stmt.where(Auction.seller_id == seller_id)
    if sort is None:
        rows, next_cursor = await paginate(
            session, stmt, Auction.created_at, Auction.id, limit=limit, cursor=cursor
        )
    else:
        rows, next_cursor = await paginate(
            session, stmt, Auction.ends_at, Auction.id, limit=limit, cursor=cursor,
            newest_first=sort.startswith("-"),
        )
    return list(rows), next_cursor


async def list_bids(
    session: AsyncSession, auction_id: uuid.UUID, *, limit: int, cursor: str | None
) -> tuple[list[Bid], str | None]:
    await get_auction(session, auction_id)
    stmt: Select[Any] = select(Bid).where(Bid.auction_id == auction_id)
    rows, next_cursor = await paginate(
        session, stmt, Bid.created_at, Bid.id, limit=limit, cursor=cursor
    )
    return list(rows), next_cursor
