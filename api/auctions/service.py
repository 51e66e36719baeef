"""Auction rules: start, bid (with held funds and anti-sniping), cancel, read, settle.

Lock order (the API-wide order is documented in ``api/cards/ownership.py``): the
auction row ``FOR UPDATE`` first, then the card, then ledger accounts in id order
(``lock_accounts`` with every user the transaction moves money for), then the
audit chain. A bid therefore queues on its auction: bids on one auction are
applied one after another, each sees the leader the previous one left, and the
amount held across all bidders always equals the current leading bid.

Closing is done by the ``auction_closer`` worker through :func:`close_next_due`.
Postgres is the truth: an auction is due when ``status = 'active' AND ends_at <=
now()``, it is claimed with ``FOR UPDATE SKIP LOCKED`` (several closers never wait
for or double-settle one auction), and the status change to ``ended`` commits with
the settlement, so a crash before COMMIT leaves it active and due, and a crash
after leaves it ended: exactly once. Bids past ``ends_at`` are refused even before
the closer got to the auction, so the outcome never depends on the closer's delay.

Redis only carries a sorted set of end times (:data:`ENDS_KEY`) that lets the
closer sleep until the next end instead of the full poll interval; losing it
costs latency, never correctness.
"""

import contextlib
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from api.auctions.models import Auction, Bid
from api.auctions.schemas import AuctionCreate
from api.audit.chain import AuditContext, record
from api.cards.ownership import lock_cards, transfer_card
from api.cards.service import document_of
from api.core.cache import CardCache
from api.core.pagination import paginate
from api.core.problems import Problem, conflict, forbidden, not_found, validation_error
from api.ledger import service as ledger
from api.users.models import User
from api.web.idempotency import Idempotency

log = structlog.get_logger(__name__)

ENDS_KEY = "ece:auctions:ends"
ANTI_SNIPING = timedelta(seconds=60)
SYSTEM = AuditContext(actor_id=None, ip=None)


def auction_not_active(detail: str = "the auction is not active") -> Problem:
    return Problem(409, "auction_not_active", detail)


def bid_too_low(minimum: int) -> Problem:
    return Problem(409, "bid_too_low", f"the bid must be at least {minimum} cents",
                   extra={"minimum_cents": minimum})


def minimum_bid(auction: Auction) -> int:
    if auction.current_bid_cents is None:
        return auction.start_price_cents
    return auction.current_bid_cents + auction.min_increment_cents


async def announce_end(redis: Redis, auction_id: uuid.UUID, ends_at: datetime) -> None:
    """Tell closers when this auction ends (best effort: they also poll Postgres)."""
    try:
        await redis.zadd(ENDS_KEY, {str(auction_id): ends_at.timestamp()})
    except RedisError as exc:
        log.warning("auction_end_announce_failed", auction_id=str(auction_id), error=str(exc))


async def _db_now(session: AsyncSession) -> datetime:
    """The database clock at this moment (not the transaction start), the one ``ends_at``
    is compared with everywhere, so API and closer agree on when an auction ended."""
    now = await session.scalar(select(func.clock_timestamp()))
    assert now is not None
    return now


# --- start, cancel ----------------------------------------------------------------


async def create_auction(
    session: AsyncSession,
    cache: CardCache,
    ctx: AuditContext,
    seller: User,
    body: AuctionCreate,
) -> Auction:
    cards = await lock_cards(session, [body.card_id])
    if not cards:
        raise validation_error(
            "card_id: no such card",
            [{"loc": ["body", "card_id"], "msg": "no such card", "type": "value_error"}],
        )
    card = cards[0]
    if card.owner_id != seller.id:
        raise Problem(403, "card_not_owned", "you do not own this card")
    if card.status != "available":
        raise Problem(409, "card_unavailable", f"the card is {card.status.replace('_', ' ')}")
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
        await session.rollback()
        raise Problem(409, "card_unavailable", "the card is already in an auction") from exc
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
    await session.commit()
    await cache.put_after_commit(document_of(card), card.version)
    await announce_end(cache.redis, auction.id, auction.ends_at)
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
    session: AsyncSession, cache: CardCache, ctx: AuditContext, user: User, auction_id: uuid.UUID
) -> Auction:
    """The seller withdraws the card, only while nobody has bid (bids hold money)."""
    auction = await _lock_auction(session, auction_id)
    if auction.seller_id != user.id:
        raise forbidden("only the seller may cancel the auction")
    if auction.status != "active" or auction.ends_at <= await _db_now(session):
        raise auction_not_active()
    if auction.bid_count > 0:
        raise conflict("the auction has bids and can no longer be cancelled")
    card = (await lock_cards(session, [auction.card_id]))[0]
    auction.status = "cancelled"
    card.status = "available"
    await session.flush()
    await record(session, ctx, "auction.cancel", "auction", auction.id,
                 {"card_id": str(card.id)})
    await session.commit()
    await cache.put_after_commit(document_of(card), card.version)
    await _forget_end(cache.redis, auction.id)
    return auction


async def _forget_end(redis: Redis, auction_id: uuid.UUID) -> None:
    try:
        await redis.zrem(ENDS_KEY, str(auction_id))
    except RedisError as exc:
        log.warning("auction_end_forget_failed", auction_id=str(auction_id), error=str(exc))


# --- bids ---------------------------------------------------------------------------


@dataclass
class PlacedBid:
    bid: Bid
    auction: Auction
    extended: bool


async def place_bid(
    session: AsyncSession,
    ctx: AuditContext,
    bidder: User,
    auction_id: uuid.UUID,
    amount_cents: int,
    *,
    redis: Redis | None = None,
    idem: Idempotency | None = None,
) -> PlacedBid:
    """Hold the new leading bid, release the previous leader's hold, one transaction.

    With ``idem`` (an ``Idempotency-Key`` claimed by the router) the answer is stored
    in the same transaction, so a retried bid is answered, not placed twice.
    """
    auction = await _lock_auction(session, auction_id)
    if auction.seller_id == bidder.id:
        raise forbidden("you cannot bid on your own auction")
    now = await _db_now(session)
    if auction.status != "active" or auction.ends_at <= now:
        raise auction_not_active("the auction has ended" if auction.status != "cancelled"
                                 else "the auction was cancelled")
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
    placed = PlacedBid(bid, auction, extended)
    if idem is not None:
        await idem.save(session, placed)
    await session.commit()
    if extended and redis is not None:
        await announce_end(redis, auction.id, auction.ends_at)
    return placed


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


# --- closing (the auction_closer worker) ----------------------------------------------


@dataclass(frozen=True)
class Settlement:
    auction_id: uuid.UUID
    result: str
    winner_id: uuid.UUID | None
    price_cents: int | None
    fee_cents: int | None
    ends_at: datetime


class SettlementFailed(Exception):
    """Settling one auction failed (rolled back); the closer skips it for a while so one
    bad auction cannot stall the ones ending after it."""

    def __init__(self, auction_id: uuid.UUID) -> None:
        super().__init__(f"settling auction {auction_id} failed")
        self.auction_id = auction_id


async def close_next_due(
    session: AsyncSession,
    cache: CardCache,
    fee_bps: int,
    skip: Collection[uuid.UUID] = (),
) -> Settlement | None:
    """Claim one due auction nobody else is closing, settle it and commit; None if none.

    One auction per transaction keeps each settlement small and independent: a
    failure rolls back that auction only (raised as :class:`SettlementFailed`), and
    the caller can ``skip`` it on the next claims.
    """
    stmt = (
        select(Auction)
        .where(Auction.status == "active", Auction.ends_at <= func.clock_timestamp())
        .order_by(Auction.ends_at)
        .limit(1)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    if skip:
        stmt = stmt.where(Auction.id.not_in(list(skip)))
    auction = await session.scalar(stmt)
    if auction is None:
        await session.rollback()
        return None
    auction_id = auction.id  # a rollback expires the object: keep the id for the report
    try:
        return await _settle(session, cache, fee_bps, auction)
    except (OperationalError, InterfaceError):
        raise  # the database went away or a lock conflict: transient, the worker backs off
    except Exception as exc:
        with contextlib.suppress(Exception):
            await session.rollback()
        raise SettlementFailed(auction_id) from exc


async def _settle(
    session: AsyncSession, cache: CardCache, fee_bps: int, auction: Auction
) -> Settlement:
    """Sold (reserve met: pay from the held bid, move the card) or no_sale; commits."""
    card = (await lock_cards(session, [auction.card_id]))[0]
    winner, price = auction.current_bidder_id, auction.current_bid_cents
    reserve_met = price is not None and (
        auction.reserve_price_cents is None or price >= auction.reserve_price_cents
    )
    fee: int | None = None
    if reserve_met and winner is not None and price is not None:
        fee = ledger.fee_for(price, fee_bps)
        await ledger.pay(session, winner, auction.seller_id, price, fee, "auction_settlement",
                         auction.id, from_held=True)
        await transfer_card(session, card, winner, "auction", auction.id, price, "auction")
        auction.result = "sold"
    else:
        if winner is not None and price is not None:
            await ledger.release(session, winner, price, "bid_release", auction.id)
        card.status = "available"
        auction.result = "no_sale"
    auction.status = "ended"
    await session.flush()
    await record(
        session,
        SYSTEM,
        "auction.settle",
        "auction",
        auction.id,
        {
            "result": auction.result,
            "card_id": str(card.id),
            "winner_id": str(winner) if auction.result == "sold" else None,
            "price_cents": price if auction.result == "sold" else None,
            "fee_cents": fee,
        },
    )
    await session.commit()
    await cache.put_after_commit(document_of(card), card.version)
    await _forget_end(cache.redis, auction.id)
    return Settlement(auction.id, auction.result, winner if fee is not None else None,
                      price if fee is not None else None, fee, auction.ends_at)


async def next_end_hint(redis: Redis) -> float | None:
    """The earliest announced end time (epoch seconds), or None (empty or Redis down)."""
    try:
        first = await redis.zrange(ENDS_KEY, 0, 0, withscores=True)
    except RedisError:
        return None
    return float(first[0][1]) if first else None


async def drop_stale_hints(redis: Redis, session: AsyncSession, before: float) -> None:
    """Remove announced ends at or before ``before`` that are no longer active auctions
    (ended by another closer, cancelled, or extended and re-announced)."""
    try:
        members = await redis.zrangebyscore(ENDS_KEY, "-inf", before)
    except RedisError:
        return
    if not members:
        return
    ids = [uuid.UUID(m.decode() if isinstance(m, bytes) else m) for m in members]
    active = set(
        await session.scalars(
            select(Auction.id).where(Auction.id.in_(ids), Auction.status == "active")
        )
    )
    await session.rollback()
    stale = [str(i) for i in ids if i not in active]
    if stale:
        with contextlib.suppress(RedisError):
            await redis.zrem(ENDS_KEY, *stale)
