"""Login, refresh-token rotation with reuse detection, and logout.

Rotation: every refresh consumes the presented token (``used_at``) and issues a
child in the same family. A consumed or revoked token presented again means two
parties hold it (theft or replay), so the whole family is revoked and every token
of that login stops working, including the attacker's fresh one.
"""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.chain import AuditContext, record
from api.auth.models import RefreshSession
from api.auth.schemas import TokenPair
from api.core.problems import unauthorized
from api.core.security import (
    create_access_token,
    hash_password,
    hash_token,
    needs_rehash,
    new_refresh_token,
    verify_password,
)
from api.core.uow import UnitOfWork
from api.users.models import User
from ece.settings import get_settings


async def issue_tokens(
    session: AsyncSession,
    user: User,
    family_id: uuid.UUID | None = None,
    parent_id: uuid.UUID | None = None,
) -> TokenPair:
    """A new access token and refresh token for ``user`` (password and wallet logins).

    The refresh token joins ``family_id`` (a login session) so that reusing any
    rotated-out member revokes the whole family; the caller commits.
    """
    family = family_id or uuid.uuid4()
    refresh = new_refresh_token()
    now = datetime.now(UTC)
    session.add(
        RefreshSession(
            family_id=family,
            user_id=user.id,
            token_hash=hash_token(refresh),
            parent_id=parent_id,
            created_at=now,
            expires_at=now + timedelta(seconds=get_settings().refresh_token_ttl_seconds),
        )
    )
    access, ttl = create_access_token(user.id, user.role, family)
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=ttl)


async def login(uow: UnitOfWork, ctx: AuditContext, login: str, password: str) -> TokenPair:
    """Tokens for a correct email-or-username and password; 401 (audited) otherwise."""
    session = uow.session
    ident = login.strip().lower()
    user = await session.scalar(
        select(User).where(or_(User.email == ident, func.lower(User.username) == ident))
    )
    if not await verify_password(user.password_hash if user else None, password) or user is None:
        # Never the typed login: it is often a password typed into the wrong field, and
        # audit events travel on to Kafka and the lake. The matched user (entity and
        # actor) says whose account it was; an unknown login leaves only the reason.
        await record(
            session,
            AuditContext(actor_id=user.id if user else None, ip=ctx.ip),
            "auth.login_failed",
            "user",
            user.id if user else None,
            {"reason": "bad_credentials" if user else "unknown_login"},
        )
        await uow.commit()  # the refusal is audited: commit it, then refuse
        raise unauthorized("invalid login or password")
    if needs_rehash(user.password_hash):
        user.password_hash = await hash_password(password)
    tokens = await issue_tokens(session, user)
    await record(session, AuditContext(user.id, ctx.ip), "auth.login", "user", user.id)
    return tokens


async def _revoke_family(session: AsyncSession, family_id: uuid.UUID) -> None:
    await session.execute(
        update(RefreshSession)
        .where(RefreshSession.family_id == family_id, RefreshSession.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )


async def refresh(uow: UnitOfWork, ctx: AuditContext, token: str) -> TokenPair:
    """Rotate: the presented token dies, a new pair is returned; reuse kills the family."""
    session = uow.session
    row = await session.scalar(
        select(RefreshSession)
        .where(RefreshSession.token_hash == hash_token(token))
        .with_for_update()
    )
    if row is None:
        raise unauthorized("invalid refresh token")
    if row.used_at is not None or row.revoked_at is not None:
        await _revoke_family(session, row.family_id)
        await record(
            session,
            AuditContext(row.user_id, ctx.ip),
            "auth.refresh_reuse",
            "refresh_session",
            row.family_id,
        )
        await uow.commit()  # the family stays revoked although the request is refused
        raise unauthorized("refresh token reused; session revoked")
    if row.expires_at <= datetime.now(UTC):
        raise unauthorized("refresh token expired")
    user = await session.get(User, row.user_id)
    if user is None:
        raise unauthorized("invalid refresh token")
    row.used_at = datetime.now(UTC)
    tokens = await issue_tokens(session, user, row.family_id, row.id)
    await record(
        session, AuditContext(user.id, ctx.ip), "auth.refresh", "refresh_session", row.family_id
    )
    return tokens


async def logout(uow: UnitOfWork, ctx: AuditContext, user: User, token: str) -> None:
    """Revoke the session family of ``token`` if it is the caller's; silent otherwise."""
    session = uow.session
    row = await session.scalar(
        select(RefreshSession).where(
            RefreshSession.token_hash == hash_token(token), RefreshSession.user_id == user.id
        )
    )
    if row is None:
        return
    await _revoke_family(session, row.family_id)
    await record(session, ctx, "auth.logout", "refresh_session", row.family_id)
