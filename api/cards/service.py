"""Card catalogue rules: issue, edit, read (through the cache), list, history.

Write path: change + history/audit rows in the request's unit of work
(``api.core.uow``), COMMIT, then the after-commit hook :func:`refresh_after_commit`
writes the new version into Redis with the set-if-newer script. Because the cache
write happens before the HTTP answer, a client that saw its PATCH succeed can never
read the previous version afterwards, and a slow read-through carrying the old row
is refused by the version floor.
"""

import uuid
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.chain import AuditContext, record
from api.cards.errors import no_such_card
from api.cards.models import Card, CardHistory
from api.core.cache import CardCache
from api.core.db import get_sessionmaker
from api.core.jsonout import dumps
from api.core.pagination import paginate
from api.core.problems import validation_error
from api.core.uow import UnitOfWork
from api.users.models import User
from ece.contracts.card_cache import card_document

CARD_COLUMNS = tuple(c.key for c in Card.__table__.columns)


def document_of(card: Card) -> dict[str, Any]:
    return card_document({key: getattr(card, key) for key in CARD_COLUMNS})


def refresh_after_commit(uow: UnitOfWork, cache: CardCache, *cards: Card) -> None:
    """Once ``uow`` committed, each card's new version wins in the cache (or its entry
    goes): the one cache write of every card change."""
    for card in cards:

        async def refresh(card: Card = card) -> None:
            await cache.put_after_commit(document_of(card), card.version)

        uow.after_commit(refresh)


async def issue_card(
    uow: UnitOfWork,
    cache: CardCache,
    ctx: AuditContext,
    admin: User,
    fields: dict[str, Any],
    owner_id: uuid.UUID | None,
) -> Card:
    session = uow.session
    owner = owner_id or admin.id
    if owner_id is not None and await session.get(User, owner_id) is None:
        raise validation_error(
            "owner_id: no such user",
            [{"loc": ["body", "owner_id"], "msg": "no such user", "type": "value_error"}],
        )
    card = Card(id=uuid.uuid4(), owner_id=owner, status="available", **fields)
    session.add(card)
    await session.flush()
    session.add(CardHistory(card_id=card.id, from_user_id=None, to_user_id=owner, reason="issue"))
    await session.flush()
    await record(session, ctx, "card.issue", "card", card.id, {"owner_id": str(owner)})
    refresh_after_commit(uow, cache, card)
    return card


async def update_card(
    uow: UnitOfWork,
    cache: CardCache,
    ctx: AuditContext,
    card_id: uuid.UUID,
    changes: dict[str, Any],
) -> Card:
    """Apply catalogue edits; the trigger bumps ``version`` and the ORM reads it back."""
    session = uow.session
    card = await session.scalar(select(Card).where(Card.id == card_id).with_for_update())
    if card is None:
        raise no_such_card()
    changed = {k: v for k, v in changes.items() if getattr(card, k) != v}
    if changed:
        for key, value in changed.items():
            setattr(card, key, value)
        await session.flush()
        await record(session, ctx, "card.update", "card", card.id, {"fields": sorted(changed)})
        refresh_after_commit(uow, cache, card)
    return card


async def read_card_json(
    cache: CardCache, card_id: uuid.UUID, *, cache_asked: bool = False
) -> tuple[bytes, int]:
    """The card document as JSON bytes and its version: a cache hit is the stored
    bytes as they are, with no database session opened (issue 14, P1); a miss reads
    the row in a session of its own and fills the cache. ``cache_asked`` means this
    request already missed the cache, so it is not asked twice."""
    cached = None if cache_asked else await cache.get_json(str(card_id))
    if cached is not None:
        return cached
    async with get_sessionmaker()() as session:
        document, version = await _read_through(session, cache, card_id)
    return dumps(document), version


async def _read_through(
    session: AsyncSession, cache: CardCache, card_id: uuid.UUID
) -> tuple[dict[str, Any], int]:
    card = await session.get(Card, card_id)
    if card is None:
        raise no_such_card()
    document = document_of(card)
    await cache.put(document, card.version)
    return document, card.version


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_cards(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID | None,
    rarity: str | None,
    set_name: str | None,
    status: str | None,
    q: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    stmt: Select[Any] = select(Card)
    if owner_id is not None:
        stmt = stmt.where(Card.owner_id == owner_id)
    if rarity is not None:
        stmt = stmt.where(Card.rarity == rarity)
    if set_name is not None:
        stmt = stmt.where(Card.set_name == set_name)
    if status is not None:
        stmt = stmt.where(Card.status == status)
    if q:
        stmt = stmt.where(Card.name.ilike(f"%{_escape_like(q)}%", escape="\\"))
    rows, next_cursor = await paginate(
        session, stmt, Card.created_at, Card.id, limit=limit, cursor=cursor
    )
    return [document_of(card) for card in rows], next_cursor


async def card_history(
    session: AsyncSession, card_id: uuid.UUID, *, limit: int, cursor: str | None
) -> tuple[list[CardHistory], str | None]:
    """Ownership transfers, oldest first (the order a provenance is read in)."""
    if await session.get(Card, card_id) is None:
        raise no_such_card()
    stmt: Select[Any] = select(CardHistory).where(CardHistory.card_id == card_id)
    rows, next_cursor = await paginate(
        session,
        stmt,
        CardHistory.at,
        CardHistory.id,
        limit=limit,
        cursor=cursor,
        newest_first=False,
    )
    return list(rows), next_cursor
