"""Request dependencies: the authenticated user, the admin guard, the audit context.

The user row is loaded on every authenticated request (one primary-key lookup) so
a demoted admin or a logged-out session loses access at once instead of when the
access token expires.
"""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import exists, select

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
    user = await session.get(User, claims.user_id)
    if user is None:
        raise unauthorized("unknown user")
    if claims.session_family is not None:
        revoked = await session.scalar(
            select(
                exists().where(
                    RefreshSession.family_id == claims.session_family,
                    RefreshSession.revoked_at.is_not(None),
                )
            )
        )
        if revoked:
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
