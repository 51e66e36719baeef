"""``/auth/wallet/*`` (Sign-In-With-Solana) and ``/me/wallets``: HTTP translation only.

Wallet logins pass through the same failed-login lockout as password logins, keyed
by the linked user when there is one, so switching between password and wallet
does not buy an attacker extra guesses. Challenges are counted per client address
and per wallet address (``api.web.lockout.challenge_quota``): each is a database row.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, status
from sqlalchemy import select

from api.audit.chain import AuditContext
from api.auth.deps import CurrentUser, anonymous_context
from api.auth.schemas import TokenPair
from api.core.db import SessionDep
from api.core.pagination import DEFAULT_LIMIT
from api.core.problems import problem_responses
from api.core.uow import UowDep
from api.wallets import service
from api.wallets.models import Wallet, WalletChallenge
from api.wallets.schemas import ChallengeIn, ChallengeOut, SignedIn, WalletOut, WalletPage
from api.web.deps import Cursor, Limit, UserCtx
from api.web.lockout import challenge_quota, login_attempts

router = APIRouter(tags=["wallets"])

AnonCtx = Annotated[AuditContext, Depends(anonymous_context)]


@router.post(
    "/auth/wallet/challenge", response_model=ChallengeOut, responses=problem_responses(422, 429)
)
async def challenge(body: ChallengeIn, uow: UowDep, ctx: AnonCtx) -> WalletChallenge:
    """A Sign-In-With-Solana message to sign (valid 5 minutes, single use, for
    ``purpose`` only); 429 past the quota per client and per wallet address."""
    await challenge_quota(ctx.ip, body.address)
    return await service.create_challenge(uow, body.address, body.purpose)


@router.post(
    "/auth/wallet/login", response_model=TokenPair, responses=problem_responses(401, 422, 429)
)
async def wallet_login(body: SignedIn, uow: UowDep, ctx: AnonCtx) -> TokenPair:
    """Tokens for the user who linked the wallet; 401 ``wallet_not_linked`` for others."""
    owner = await uow.session.scalar(
        select(Wallet.user_id).where(Wallet.address == body.address)
    )
    account = f"user:{owner}" if owner else f"wallet:{body.address}"
    async with login_attempts(account, ctx.ip):
        return await service.wallet_login(uow, ctx, body.address, body.signature, body.nonce)


@router.post(
    "/me/wallets",
    status_code=status.HTTP_201_CREATED,
    response_model=WalletOut,
    responses=problem_responses(401, 409, 422),
)
async def link_wallet(
    body: SignedIn, uow: UowDep, user: CurrentUser, ctx: UserCtx
) -> Wallet:
    """Link a wallet by signing a fresh challenge; 409 when it is linked already."""
    return await service.link_wallet(uow, ctx, user, body.address, body.signature, body.nonce)


@router.get("/me/wallets", response_model=WalletPage, responses=problem_responses(401, 422))
async def list_wallets(
    session: SessionDep,
    user: CurrentUser,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """The caller's linked wallets, newest first."""
    rows, next_cursor = await service.list_wallets(session, user, limit=limit, cursor=cursor)
    return {"items": [WalletOut.model_validate(r) for r in rows], "next_cursor": next_cursor}
