"""Watchlists and price alerts: the caller's own rows, written through the unit of work.

Both tables are captured by CDC: the notification job keeps watchers and alerts in
its state from their change stream, so a row committed here starts matching new
listings within the pipeline's latency, with no query per event.
"""

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.chain import AuditContext, record
from api.cards.errors import no_such_card
from api.cards.models import Card
from api.core.pagination import paginate
from api.core.uow import UnitOfWork
from api.notifications.models import PriceAlert, WatchlistEntry
from api.users.models import User
from api.watchlists.errors import no_such_alert, not_watched
from api.watchlists.schemas import AlertIn


async def watch(
    uow: UnitOfWork, ctx: AuditContext, user: User, card_id: uuid.UUID
) -> tuple[WatchlistEntry, bool]:
    """The entry and whether it is new; watching twice is harmless (ON CONFLICT)."""
    session = uow.session
    if await session.get(Card, card_id) is None:
        raise no_such_card()
    inserted = await session.scalar(
        insert(WatchlistEntry)
        .values(user_id=user.id, card_id=card_id)
        .on_conflict_do_nothing(index_elements=["user_id", "card_id"])
        .returning(WatchlistEntry.card_id)
    )
    entry = await session.scalar(
        select(WatchlistEntry)
        .where(WatchlistEntry.user_id == user.id, WatchlistEntry.card_id == card_id)
        .execution_options(populate_existing=True)
    )
    assert entry is not None  # inserted now or before, and never deleted in between here
    if inserted is not None:
        await record(session, ctx, "watchlist.add", "card", card_id)
    return entry, inserted is not None


async def list_watched(
    session: AsyncSession, user: User, *, limit: int, cursor: str | None
) -> tuple[Sequence[WatchlistEntry], str | None]:
    stmt: Select[Any] = select(WatchlistEntry).where(WatchlistEntry.user_id == user.id)
    return await paginate(session, stmt, WatchlistEntry.created_at, WatchlistEntry.card_id,
                          limit=limit, cursor=cursor)


async def unwatch(uow: UnitOfWork, ctx: AuditContext, user: User, card_id: uuid.UUID) -> None:
    result = await uow.session.execute(
        delete(WatchlistEntry)
        .where(WatchlistEntry.user_id == user.id, WatchlistEntry.card_id == card_id)
        .returning(WatchlistEntry.card_id)
    )
    if result.first() is None:
        raise not_watched()
    await record(uow.session, ctx, "watchlist.remove", "card", card_id)


async def create_alert(uow: UnitOfWork, ctx: AuditContext, user: User, body: AlertIn) -> PriceAlert:
    session = uow.session
    if body.card_id is not None and await session.get(Card, body.card_id) is None:
        raise no_such_card([body.card_id], "card_id")  # a body reference: 422
    alert = PriceAlert(
        id=uuid.uuid4(), user_id=user.id, max_price_cents=body.max_price_cents,
        card_id=body.card_id, set_name=body.set_name, rarity=body.rarity,
    )
    session.add(alert)
    await session.flush()
    await session.refresh(alert)
    await record(session, ctx, "price_alert.create", "price_alert", alert.id,
                 body.model_dump(exclude_none=True))
    return alert


async def list_alerts(
    session: AsyncSession, user: User, *, limit: int, cursor: str | None
) -> tuple[Sequence[PriceAlert], str | None]:
    stmt: Select[Any] = select(PriceAlert).where(PriceAlert.user_id == user.id)
    return await paginate(session, stmt, PriceAlert.created_at, PriceAlert.id,
                          limit=limit, cursor=cursor)


async def delete_alert(uow: UnitOfWork, ctx: AuditContext, user: User, alert_id: uuid.UUID) -> None:
    result = await uow.session.execute(
        delete(PriceAlert)
        .where(PriceAlert.id == alert_id, PriceAlert.user_id == user.id)
        .returning(PriceAlert.id)
    )
    if result.first() is None:
        raise no_such_alert()
    await record(uow.session, ctx, "price_alert.delete", "price_alert", alert_id)
