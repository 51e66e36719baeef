"""Request dependencies: the authenticated user, the admin guard, the audit context.

The user row is loaded on every authenticated request so a demoted admin or a
logged-out session loses access at once instead of when the access token expires
(``docs/rest.md``: logout and refresh-token reuse revoke the session). Nothing of
it is cached across requests: one statement reads the user row and whether the
token's session family is revoked, one round trip per request.
"""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import exists, false, select

from api.audit.chain import AuditContext
from api.auth.models import RefreshSession
from api.core.db import SessionDep
from api.core.problems import forbidden, unauthorized
from api.core.security import decode_access_token
from api.users.models import User

bearer = HTTPBearer(auto_error=False)


async def current_user(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    if credentials is None:
        raise unauthorized("missing bearer token")
    claims = decode_access_token(credentials.credentials)
    revoked = (
        false()
        if claims.session_family is None
        else exists().where(
            RefreshSession.family_id == claims.session_family,
            RefreshSession.revoked_at.is_not(None),
        )
    )
    row = (
        await session.execute(
            select(User, revoked.label("revoked")).where(User.id == claims.user_id)
        )
    ).first()
    if row is None:
        raise unauthorized("unknown user")
    user, is_revoked = row
    if is_revoked:
        raise unauthorized("session revoked")
    return user


async def require_admin(user: Annotated[User, Depends(current_user)]) -> User:
    if user.role != "admin":
        raise forbidden("admin role required")
    return user


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def anonymous_context(request: Request) -> AuditContext:
    return AuditContext(actor_id=None, ip=client_ip(request))


async def user_context(
    request: Request, user: Annotated[User, Depends(current_user)]
) -> AuditContext:
    return AuditContext(actor_id=user.id, ip=client_ip(request))


CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(require_admin)]
