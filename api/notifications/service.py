"""Reading and marking a user's notifications, and their Web Push subscriptions.

Notifications are written by the delivery worker only (numbered per user); the API
reads them and sets ``read_at``. Marking read is idempotent: a read notification
keeps its first ``read_at``.

A push endpoint is a capability URL only the browser that subscribed knows, so a
``POST`` of an endpoint registered by *another* account moves it to the caller:
that browser is now signed in as the caller, and leaving it with the previous
account would show that account's notifications to whoever uses the browser now.
The move is audited; the previous owner simply stops getting pushes there.
"""

import ipaddress
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.chain import AuditContext, record
from api.core.pagination import paginate
from api.core.uow import UnitOfWork
from api.notifications.errors import (
    bad_push_endpoint,
    no_such_notification,
    no_such_subscription,
)
from api.notifications.models import Notification, PushSubscription
from api.notifications.schemas import PushSubscriptionIn
from api.users.models import User
from ece.settings import Settings

LOOPBACK_NAMES = ("localhost",)


async def list_notifications(
    session: AsyncSession,
    user: User,
    *,
    unread: bool,
    after_seq: int | None,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[Notification], str | None]:
    """Newest first by ``seq``; with ``after_seq`` the ones after it, oldest first
    (what a client missed, in the order it must apply them)."""
    stmt: Select[Any] = select(Notification).where(Notification.user_id == user.id)
    if unread:
        stmt = stmt.where(Notification.read_at.is_(None))
    newest_first = after_seq is None
    if after_seq is not None:
        stmt = stmt.where(Notification.seq > after_seq)
    return await paginate(
        session, stmt, Notification.seq, Notification.id, limit=limit, cursor=cursor,
        newest_first=newest_first, sort="seq" if newest_first else "after_seq",
    )


async def unread_count(session: AsyncSession, user: User) -> int:
    stmt = select(func.count()).where(
        Notification.user_id == user.id, Notification.read_at.is_(None)
    )
    return int(await session.scalar(stmt) or 0)


async def mark_read(
    uow: UnitOfWork, ctx: AuditContext, user: User, notification_id: uuid.UUID
) -> None:
    session = uow.session
    row = await session.scalar(
        select(Notification)
        .where(Notification.id == notification_id, Notification.user_id == user.id)
        .with_for_update()
    )
    if row is None:
        raise no_such_notification()
    if row.read_at is None:
        row.read_at = datetime.now(UTC)
        await session.flush()
        await record(session, ctx, "notification.read", "notification", row.id, {"seq": row.seq})


async def mark_all_read(uow: UnitOfWork, ctx: AuditContext, user: User) -> int:
    """Every unread notification of the caller, in one statement; returns how many."""
    result = await uow.session.execute(
        update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=func.now())
        .returning(Notification.seq)
    )
    seqs = [s for (s,) in result]
    if seqs:
        await record(uow.session, ctx, "notification.read_all", "user", user.id,
                     {"count": len(seqs), "max_seq": max(seqs)})
    return len(seqs)


# --- Web Push subscriptions ----------------------------------------------------------


def check_endpoint(endpoint: str, settings: Settings) -> None:
    """HTTPS only; plain HTTP to a loopback host outside prod (the local push service)."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if not host or parts.username or parts.password:
        raise bad_push_endpoint("must be an absolute URL with a host and no credentials")
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and settings.env != "prod" and _is_loopback(host):
        return
    raise bad_push_endpoint("must be an https URL")


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def subscribe(
    uow: UnitOfWork, ctx: AuditContext, user: User, body: PushSubscriptionIn, settings: Settings
) -> tuple[PushSubscription, bool]:
    """The caller's subscription for ``body.endpoint`` and whether it was created now.

    The endpoint row is locked, so two registrations of one endpoint serialise; the
    same endpoint again updates the keys (a browser may rotate them) and keeps the id.
    """
    check_endpoint(body.endpoint, settings)
    session = uow.session
    row = await session.scalar(
        select(PushSubscription).where(PushSubscription.endpoint == body.endpoint).with_for_update()
    )
    if row is not None and row.user_id == user.id:
        if (row.p256dh, row.auth) != (body.keys.p256dh, body.keys.auth):
            row.p256dh, row.auth = body.keys.p256dh, body.keys.auth
            await session.flush()
            await record(session, ctx, "push_subscription.rekey", "push_subscription", row.id)
        return row, False
    if row is not None:  # another account's: this browser now belongs to the caller
        await record(session, ctx, "push_subscription.move", "push_subscription", row.id,
                     {"from_user_id": str(row.user_id)})
        await session.delete(row)
        await session.flush()
    created = PushSubscription(
        id=uuid.uuid4(), user_id=user.id, endpoint=body.endpoint,
        p256dh=body.keys.p256dh, auth=body.keys.auth,
    )
    session.add(created)
    await session.flush()
    await session.refresh(created)
    await record(session, ctx, "push_subscription.create", "push_subscription", created.id,
                 {"host": urlsplit(body.endpoint).hostname})
    return created, True


async def list_subscriptions(
    session: AsyncSession, user: User, *, limit: int, cursor: str | None
) -> tuple[Sequence[PushSubscription], str | None]:
    stmt: Select[Any] = select(PushSubscription).where(PushSubscription.user_id == user.id)
    return await paginate(session, stmt, PushSubscription.created_at, PushSubscription.id,
                          limit=limit, cursor=cursor)


async def unsubscribe(
    uow: UnitOfWork, ctx: AuditContext, user: User, subscription_id: uuid.UUID
) -> None:
    result = await uow.session.execute(
        delete(PushSubscription)
        .where(PushSubscription.id == subscription_id, PushSubscription.user_id == user.id)
        .returning(PushSubscription.id)
    )
    if result.first() is None:
        raise no_such_subscription()
    await record(uow.session, ctx, "push_subscription.delete", "push_subscription",
                 subscription_id)
