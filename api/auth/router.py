"""``/auth/*``: HTTP translation only; the rules live in ``auth.service``."""

from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from api.audit.chain import AuditContext
from api.auth import service
from api.auth.deps import CurrentUser, anonymous_context, user_context
from api.auth.schemas import LoginIn, RefreshIn, RegisterIn, TokenPair
from api.core.problems import problem_responses
from api.core.uow import UowDep
from api.users.models import User
from api.users.schemas import UserOut
from api.users.service import register_user
from api.web.lockout import login_account_key, login_attempts

router = APIRouter(prefix="/auth", tags=["auth"])

AnonCtx = Annotated[AuditContext, Depends(anonymous_context)]


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses=problem_responses(409, 422),
)
async def register(body: RegisterIn, uow: UowDep, ctx: AnonCtx) -> User:
    return await register_user(
        uow, ctx, email=body.email, username=body.username, password=body.password
    )


@router.post("/login", response_model=TokenPair, responses=problem_responses(401, 422, 429))
async def login(body: LoginIn, uow: UowDep, ctx: AnonCtx) -> TokenPair:
    """Tokens; 429 while the account or client is locked out after failed logins."""
    async with login_attempts(await login_account_key(uow.session, body.login), ctx.ip):
        return await service.login(uow, ctx, body.login, body.password)


@router.post("/refresh", response_model=TokenPair, responses=problem_responses(401, 422))
async def refresh(body: RefreshIn, uow: UowDep, ctx: AnonCtx) -> TokenPair:
    return await service.refresh(uow, ctx, body.refresh_token)


@router.post(
    "/logout", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(401, 422)
)
async def logout(
    body: RefreshIn,
    uow: UowDep,
    user: CurrentUser,
    ctx: Annotated[AuditContext, Depends(user_context)],
) -> Response:
    await service.logout(uow, ctx, user, body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
