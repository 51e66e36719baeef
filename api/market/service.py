"""Fixed-price marketplace: list, cancel, buy, browse.

Every write is one transaction that follows the global lock order documented in
``api/cards/ownership.py`` (listing row, then the card, then ledger accounts, then
the audit chain), commits once, and only then refreshes the card cache. A purchase
locks the listing row first, so N buyers racing for one listing queue on that row:
the first one sells it, and each of the others re-reads it as ``sold`` after the
winner's COMMIT and gets 409 ``listing_not_active`` before any money is touched.
"""

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, insert, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.chain import AuditContext, record
from api.cards.models import Card
from api.cards.ownership import lock_cards, transfer_card
from api.cards.service import document_of
from api.core.cache import CardCache
from api.core.problems import Problem, conflict, forbidden, not_found, validation_error
from api.ledger import service as ledger
from api.market.models import Listing, Sale
from api.users.models import User
from api.web.idempotency import Idempotency
from ece.settings import get_settings


def listing_not_active(status: str) -> Problem:
    return conflict(f"the listing is {status}", "listing_not_active")


def card_unavailable(status: str) -> Problem:
    return conflict(f"the card is {status}", "card_unavailable")


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


async def _locked_card(session: AsyncSession, card_id: uuid.UUID) -> Card:
    cards = await lock_cards(session, [card_id])
    if not cards:
        raise not_found("card")
    return cards[0]


async def create_listing(
    session: AsyncSession,
    cache: CardCache,
    ctx: AuditContext,
    seller: User,
    card_id: uuid.UUID,
    price_cents: int,
) -> Listing:
    """The owner puts an ``available`` card up for sale; the card becomes ``listed``."""
    card = await _locked_card(session, card_id)
    if card.owner_id != seller.id:
        raise forbidden("you do not own this card", "card_not_owned")
    if card.status != "available":
        raise card_unavailable(card.status)
    card.status = "listed"
    listing = Listing(
        id=uuid.uuid4(), card_id=card.id, seller_id=seller.id, price_cents=price_cents
    )
    session.add(listing)
    try:
        await session.flush()
    except IntegrityError as exc:  # uq_listings_active_card: the card lock makes this rare
        raise card_unavailable("already listed") from exc
    await record(
        session,
        ctx,
        "listing.create",
        "listing",
        listing.id,
        {"card_id": str(card.id), "price_cents": price_cents},
    )
    await session.commit()
    await cache.put_after_commit(document_of(card), card.version)
    return listing


async def cancel_listing(
    session: AsyncSession, cache: CardCache, ctx: AuditContext, user: User, listing_id: uuid.UUID
) -> Listing:
    """The seller (or an admin) withdraws an active listing; the card is ``available``."""
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
    await session.commit()
    if card_changed:
        await cache.put_after_commit(document_of(card), card.version)
    return listing


async def purchase(
    session: AsyncSession,
    cache: CardCache,
    ctx: AuditContext,
    buyer: User,
    listing_id: uuid.UUID,
    idem: Idempotency | None = None,
) -> Sale:
    """Buy an active listing: money, card, listing, sale, valuation and audit commit
    together (or, on any refusal, nothing does)."""
    listing = await _lock_listing(session, listing_id)
    if listing.seller_id == buyer.id:
        raise forbidden("you cannot buy your own listing")
    if listing.status != "active":
        raise listing_not_active(listing.status)
    card = await _locked_card(session, listing.card_id)
    if card.owner_id != listing.seller_id or card.status != "listed":
        # Cannot happen while every path follows the lock order; refuse rather than guess.
        raise card_unavailable(card.status)
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
    if idem is not None:
        await idem.save(session, sale)
    # Money last: the platform_fees row is shared by every sale, so it is locked only
    # for the audit append and the COMMIT. A short balance raises insufficient_funds
    # here and the rollback undoes the writes above (and the stored answer).
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
    await session.commit()
    await cache.put_after_commit(document_of(card), card.version)
    return sale


async def get_listing(session: AsyncSession, listing_id: uuid.UUID) -> Listing:
    listing = await session.get(Listing, listing_id)
    if listing is None:
        raise not_found("listing")
    return listing


# --- browsing: keyset pagination on the chosen sort ---------------------------------


def _encode(kind: str, value: Any, row_id: uuid.UUID) -> str:
    raw = json.dumps([kind, value, str(row_id)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, kind: str) -> tuple[Any, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        got, value, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if got != kind:
            raise ValueError("cursor of another sort")
        if kind == "price":
            if not isinstance(value, int):
                raise TypeError("price")
        else:
            value = datetime.fromisoformat(value)
        return value, uuid.UUID(row_id)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
        raise validation_error(
            "cursor: not a cursor returned by this endpoint with this sort",
            [{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}],
        ) from exc


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
    descending = sort.startswith("-")
    key = tuple_(column, Listing.id)
    if cursor:
        value, row_id = _decode(cursor, kind)
        stmt = stmt.where(
            key < tuple_(value, row_id) if descending else key > tuple_(value, row_id)
        )
    order = (column.desc(), Listing.id.desc()) if descending else (column.asc(), Listing.id.asc())
    rows = (await session.scalars(stmt.order_by(*order).limit(limit + 1))).all()
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    value = last.price_cents if kind == "price" else last.created_at.isoformat()
    return rows[:limit], _encode(kind, value, last.id)
