"""Fixed-price marketplace: list, cancel, buy, browse.

Every write is one unit of work (``api.core.uow``) that follows the global lock
order documented in ``api/cards/ownership.py`` (listing row, then the card, then
ledger accounts, then the audit chain); the caller commits it once and only then
is the card cache refreshed. A purchase
locks the listing row first, so N buyers racing for one listing queue on that row:
the first one sells it, and each of the others re-reads it as ``sold`` after the
winner's COMMIT and gets 409 ``listing_not_active`` before any money is touched.

The purchase is the hottest write of the API (issue 12, P2), so after its checks it
writes in few round trips: one statement (:data:`SELL_SQL`, data-modifying CTEs)
marks the listing sold, inserts the sale, moves the card and appends its history
and valuation, the same trail ``api.cards.ownership.transfer_card`` leaves (the
version trigger bumps ``version``; foreign keys are checked at the end of the
statement, when every row exists); then the ledger payment and the audit event.
"""

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from api.audit.chain import AuditContext, record
from api.cards.errors import card_is, card_not_owned, card_unavailable, no_such_card
from api.cards.models import Card
from api.cards.ownership import lock_cards
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


# The sale's writes after the checks, in one round trip. Rows are already locked by
# this transaction (listing, then card), so the CTEs only write; RETURNING gives the
# sale and the card's new version and updated_at (set by its triggers).
SELL_SQL = text("""
WITH listing AS (
    UPDATE listings SET status = 'sold' WHERE id = :listing_id
), sale AS (
    INSERT INTO sales (id, listing_id, card_id, buyer_id, seller_id, price_cents, fee_cents)
    VALUES (:sale_id, :listing_id, :card_id, :buyer_id, :seller_id, :price, :fee)
    RETURNING created_at
), card AS (
    UPDATE cards SET owner_id = :buyer_id, status = 'available' WHERE id = :card_id
    RETURNING version, updated_at
), history AS (
    INSERT INTO card_history (id, card_id, from_user_id, to_user_id, reason, reference_id)
    VALUES (:history_id, :card_id, :seller_id, :buyer_id, 'sale', :sale_id)
), valuation AS (
    INSERT INTO card_valuations (id, card_id, value_cents, source)
    VALUES (:valuation_id, :card_id, :price, 'sale')
)
SELECT sale.created_at, card.version, card.updated_at FROM sale, card
""")


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
    locked = (
        await session.execute(
            select(Listing.card_id, Listing.seller_id, Listing.price_cents, Listing.status)
            .where(Listing.id == listing_id)
            .with_for_update()
        )
    ).first()
    if locked is None:
        raise not_found("listing")
    card_id, seller_id, price, listing_status = locked
    if seller_id == buyer.id:
        raise forbidden("you cannot buy your own listing")
    if listing_status != "active":
        raise listing_not_active(listing_status)
    card = await _locked_card(session, card_id)
    if card.owner_id != seller_id or card.status != "listed":
        # Cannot happen while every path follows the lock order; refuse rather than guess.
        raise card_is(card.status)
    ensure_movable(card)  # locked after it was listed: no sale (api/cards/policy.py)
    fee = ledger.fee_for(price, get_settings().fee_bps)
    sale_id = uuid.uuid4()
    sold = (
        await session.execute(
            SELL_SQL,
            {
                "listing_id": listing_id, "sale_id": sale_id, "card_id": card.id,
                "buyer_id": buyer.id, "seller_id": seller_id, "price": price, "fee": fee,
                "history_id": uuid.uuid4(), "valuation_id": uuid.uuid4(),
            },
        )
    ).one()
    # The card row as the statement left it, without the ORM flushing it again.
    for key, value in (("owner_id", buyer.id), ("status", "available"),
                       ("version", sold.version), ("updated_at", sold.updated_at)):
        set_committed_value(card, key, value)
    sale = Sale(
        id=sale_id, listing_id=listing_id, card_id=card.id, buyer_id=buyer.id,
        seller_id=seller_id, price_cents=price, fee_cents=fee, created_at=sold.created_at,
    )
    # Money last: the platform_fees row is shared by every sale, so it is locked only
    # for the audit append and the COMMIT. A short balance raises insufficient_funds
    # here and the rollback undoes the writes above (and nothing is stored for an
    # Idempotency-Key).
    await ledger.pay(session, buyer.id, seller_id, price, fee, "sale", sale_id)
    await record(
        session,
        ctx,
        "listing.purchase",
        "sale",
        sale_id,
        {
            "listing_id": str(listing_id),
            "card_id": str(card.id),
            "seller_id": str(seller_id),
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
