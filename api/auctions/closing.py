"""Settling due auctions (the ``auction_closer`` worker), exactly once.

Postgres is the truth: an auction is due when ``status = 'active' AND ends_at <=
now()``, it is claimed with ``FOR UPDATE SKIP LOCKED`` (several closers never wait
for or double-settle one auction), and the status change to ``ended`` commits with
the settlement in one unit of work, so a crash before COMMIT leaves it active and
due, and a crash after leaves it ended. Lock order as everywhere
(``api/cards/ownership.py``): the auction, its card, the accounts, the audit chain.
"""

import contextlib
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import InterfaceError, OperationalError

from api.auctions.ends import forget_end
from api.auctions.models import Auction
from api.audit.chain import AuditContext, record
from api.cards.ownership import lock_cards, transfer_card
from api.cards.policy import is_locked
from api.cards.service import refresh_after_commit
from api.core.cache import CardCache
from api.core.uow import UnitOfWork
from api.ledger import service as ledger

SYSTEM = AuditContext(actor_id=None, ip=None)


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
    uow: UnitOfWork,
    cache: CardCache,
    fee_bps: int,
    skip: Collection[uuid.UUID] = (),
) -> Settlement | None:
    """Claim one due auction nobody else is closing and settle it in ``uow``, committed
    here; None if none is due.

    One auction per transaction keeps each settlement small and independent: a
    failure (the COMMIT included) rolls back that auction only, raised as
    :class:`SettlementFailed`, and the caller can ``skip`` it on the next claims.
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
    auction = await uow.session.scalar(stmt)
    if auction is None:
        await uow.rollback()
        return None
    auction_id = auction.id  # a rollback expires the object: keep the id for the report
    try:
        settlement = await _settle(uow, cache, fee_bps, auction)
        await uow.commit()  # here, not by the caller: a failed COMMIT is this auction's
        return settlement
    except (OperationalError, InterfaceError):
        raise  # the database went away or a lock conflict: transient, the worker backs off
    except Exception as exc:
        with contextlib.suppress(Exception):
            await uow.rollback()
        raise SettlementFailed(auction_id) from exc


async def _settle(
    uow: UnitOfWork, cache: CardCache, fee_bps: int, auction: Auction
) -> Settlement:
    """Sold (reserve met: pay from the held bid, move the card) or no_sale (also when
    an admin locked the card since the auction started, ``api/cards/policy.py``)."""
    session = uow.session
    card = (await lock_cards(session, [auction.card_id]))[0]
    winner, price = auction.current_bidder_id, auction.current_bid_cents
    reserve_met = not is_locked(card) and price is not None and (
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
    refresh_after_commit(uow, cache, card)
    auction_id = auction.id

    async def forget() -> None:
        await forget_end(cache.redis, auction_id)

    uow.after_commit(forget)
    return Settlement(auction.id, auction.result, winner if fee is not None else None,
                      price if fee is not None else None, fee, auction.ends_at)
