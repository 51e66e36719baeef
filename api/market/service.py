"""Fixed-price marketplace: list, cancel, buy, browse.

Every write is one unit of work (``api.core.uow``) that follows the global lock
order documented in ``api/cards/ownership.py`` (listing row, then the card, then
ledger accounts, then the audit chain); the caller commits it once and only then
is the card cache refreshed. A purchase
locks the listing row first, so N buyers racing for one listing queue on that row:
the first one sells it, and each of the others re-reads it as ``sold`` after the
winner's COMMIT and gets 409 ``listing_not_active`` before any money is touched.
"""

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.chain import AuditContext, record
from api.cards.errors import card_is, card_not_owned, card_unavailable, no_such_card
from api.cards.models import Card
from api.cards.ownership import lock_cards, transfer_card
from api.cards.policy import ensure_movable
from api.cards.service import refresh_after_commit
from api.core.cache import CardCache
from api.core.pagination import paginate
from api.core.problems import forbidden, not_found
from api.core.uow import UnitOfWork
from api.ledger import service as ledger
from api.market.errors import listing_not_active
from api.market.models import Listing, Sale
from api.users.models import User
from ece.settings import get_settings


async def _lock_listing(session: AsyncSession, listing_id: uuid.UUID) -> Listing:
    listing = await session.scalar(
        select(Listing)
        .where(Listing.id == listing_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if listing is None:
        raise not_found("listing")
    return listing


async def _locked_card(
    session: AsyncSession, card_id: uuid.UUID, body_field: str | None = None
) -> Card:
    cards = await lock_cards(session, [card_id])
    if not cards:
        raise no_such_card([card_id], body_field)
    return cards[0]


async def create_listing(
    uow: UnitOfWork,
    cache: CardCache,
    ctx: AuditContext,
    seller: User,
    card_id: uuid.UUID,
    price_cents: int,
) -> Listing:
    """The owner puts an ``available`` card up for sale; the card becomes ``listed``."""
    session = uow.session
    card = await _locked_card(session, card_id, "card_id")  # named by the body: 422
    if card.owner_id != seller.id:
        raise card_not_owned()
    if card.status != "available":
        raise card_is(card.status)
    ensure_movable(card)
    card.status = "listed"
    listing = Listing(
        id=uuid.uuid4(), card_id=card.id, seller_id=seller.id, price_cents=price_cents
    )
    session.add(listing)
    try:
        await session.flush()
    except IntegrityError as exc:  # uq_listings_active_card: the card lock makes this rare
        raise card_unavailable("the card is already listed") from exc
    await record(
        session,
        ctx,
        "listing.create",
        "listing",
        listing.id,
        {"card_id": str(card.id), "price_cents": price_cents},
    )
    refresh_after_commit(uow, cache, card)
    return listing


async def cancel_listing(
    uow: UnitOfWork, cache: CardCache, ctx: AuditContext, user: User, listing_id: uuid.UUID
) -> Listing:
    """The seller (or an admin) withdraws an active listing; the card is ``available``."""
    session = uow.session
    listing = await _lock_listing(session, listing_id)
    if listing.seller_id != user.id and user.role != "admin":
        raise forbidden("only the seller or an admin may cancel this listing")
    if listing.status != "active":
        raise listing_not_active(listing.status)
    card = await _locked_card(session, listing.card_id)
    listing.status = "cancelled"
    card_changed = card.status == "listed" and card.owner_id == listing.seller_id
    if card_changed:
        card.status = "available"
    await session.flush()
    await record(session, ctx, "listing.cancel", "listing", listing.id, {"card_id": str(card.id)})
    if card_changed:
        refresh_after_commit(uow, cache, card)
    return listing


async def purchase(
    uow: UnitOfWork,
    cache: CardCache,
    ctx: AuditContext,
    buyer: User,
    listing_id: uuid.UUID,
) -> Sale:
    """Buy an active listing: money, card, listing, sale, valuation and audit commit
    together (or, on any refusal, nothing does)."""
    session = uow.session
    listing = await _lock_listing(session, listing_id)
    if listing.seller_id == buyer.id:
        raise forbidden("you cannot buy your own listing")
    if listing.status != "active":
        raise listing_not_active(listing.status)
    card = await _locked_card(session, listing.card_id)
    if card.owner_id != listing.seller_id or card.status != "listed":
        # Cannot happen while every path follows the lock order; refuse rather than guess.
        raise card_is(card.status)
    ensure_movable(card)  # locked after it was listed: no sale (api/cards/policy.py)
    price = listing.price_cents
    fee = ledger.fee_for(price, get_settings().fee_bps)
    sale_id = uuid.uuid4()
    listing.status = "sold"
    await session.flush()
    sale = await session.scalar(
        insert(Sale)
        .values(
            id=sale_id,
            listing_id=listing.id,
            card_id=card.id,
            buyer_id=buyer.id,
            seller_id=listing.seller_id,
            price_cents=price,
            fee_cents=fee,
        )
        .returning(Sale)
    )
    assert sale is not None
    await transfer_card(session, card, buyer.id, "sale", sale.id, price, "sale")
    # Money last: the platform_fees row is shared by every sale, so it is locked only
    # for the audit append and the COMMIT. A short balance raises insufficient_funds
    # here and the rollback undoes the writes above (and nothing is stored for an
    # Idempotency-Key).
    await ledger.pay(session, buyer.id, listing.seller_id, price, fee, "sale", sale.id)
    await record(
        session,
        ctx,
        "listing.purchase",
        "sale",
        sale.id,
        {
            "listing_id": str(listing.id),
            "card_id": str(card.id),
            "seller_id": str(listing.seller_id),
            "price_cents": price,
            "fee_cents": fee,
        },
    )
    refresh_after_commit(uow, cache, card)
    return sale


async def get_listing(session: AsyncSession, listing_id: uuid.UUID) -> Listing:
    listing = await session.get(Listing, listing_id)
    if listing is None:
        raise not_found("listing")
    return listing


# --- browsing: keyset pagination on the chosen sort ---------------------------------


async def list_listings(
    session: AsyncSession,
    *,
    status: str,
    card_id: uuid.UUID | None,
    seller_id: uuid.UUID | None,
    min_price_cents: int | None,
    max_price_cents: int | None,
    sort: str,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[Listing], str | None]:
    """One page; the cursor names the last row seen in the sort order (stable under
    concurrent inserts), ties broken by id."""
    stmt: Select[Any] = select(Listing).where(Listing.status == status)
    if card_id is not None:
        stmt = stmt.where(Listing.card_id == card_id)
    if seller_id is not None:
        stmt = stmt.where(Listing.seller_id == seller_id)
    if min_price_cents is not None:
        stmt = stmt.where(Listing.price_cents >= min_price_cents)
    if max_price_cents is not None:
        stmt = stmt.where(Listing.price_cents <= max_price_cents)
    kind = "price" if sort.endswith("price") else "created"
    column = Listing.price_cents if kind == "price" else Listing.created_at
    rows, next_cursor = await paginate(
        session, stmt, column, Listing.id, limit=limit, cursor=cursor,
        newest_first=sort.startswith("-"), sort=kind,
    )
    return rows, next_cursor
