"""Wallet challenges, wallet sign-in and wallet linking.

A challenge is single-use: the transaction that accepts its signature locks the row
(``FOR UPDATE``) and sets ``used_at`` before committing, so two requests carrying the
same signature serialise and the second finds it used (401). Signatures are checked
against the stored message of the address's newest challenges, never against text
the client sends.

Every challenge has a purpose, ``login`` or ``link``, chosen when it is issued
(written into the message and the row): a linked wallet signs in only over a
``login`` challenge, and an unlinked one is linked only over a ``link`` challenge,
so a signature the user gave for one can never be spent on the other.

Failed wallet logins are audited like failed password logins (the audit event is
the only write of a failure). A signature that verified but names no linked wallet
still consumes its challenge, so it cannot be replayed once the wallet is linked.
Failed links write nothing. Challenges are purged by the housekeeping worker
(:func:`purge_expired_challenges`, run by ``api.workers.purgers``) an hour
after they expired.
"""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.chain import AuditContext, record
from api.auth.schemas import TokenPair
from api.auth.service import issue_tokens
from api.core.pagination import paginate
from api.core.problems import conflict, unauthorized
from api.core.uow import UnitOfWork
from api.users.models import User
from api.wallets import siws
from api.wallets.models import Wallet, WalletChallenge
from ece.settings import get_settings

# How many of an address's newest challenges a signature is tried against when the
# client does not name the nonce (ed25519 verification costs ~50 µs each).
CANDIDATES = 20
# Challenges are kept this long after expiry (reuse is reported as "expired" after).
RETENTION = timedelta(hours=1)


class ChallengeFailure(Exception):
    """Why a signature was refused (a stable ``reason`` for audit, a ``detail`` for humans)."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(detail)


async def create_challenge(
    uow: UnitOfWork, address: str, purpose: str | None = None
) -> WalletChallenge:
    """A fresh challenge for ``address``, bound to ``purpose`` (by default ``link``
    while no account has linked the address, else ``login``)."""
    session = uow.session
    if purpose is None:
        linked = await session.scalar(select(Wallet.id).where(Wallet.address == address))
        purpose = "login" if linked is not None else "link"
    now = datetime.now(UTC)
    nonce = siws.new_nonce()
    expires_at = now + siws.CHALLENGE_TTL
    message = siws.build_message(
        siws.origin(get_settings()), address, nonce, now, expires_at, purpose
    )
    challenge = WalletChallenge(
        nonce=nonce,
        address=address,
        message=message,
        purpose=purpose,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(challenge)
    await session.flush()
    return challenge


async def consume_challenge(
    session: AsyncSession,
    address: str,
    signature: str,
    nonce: str | None,
    purpose: str | None,
) -> WalletChallenge:
    """Mark the challenge that ``signature`` signs used (caller commits), or raise why not.

    ``purpose`` (when not None) must be the one the challenge was issued for.
    """
    stmt = select(WalletChallenge).where(WalletChallenge.address == address)
    if nonce is not None:
        stmt = stmt.where(WalletChallenge.nonce == nonce)
    rows = (
        await session.scalars(
            stmt.order_by(WalletChallenge.created_at.desc()).limit(CANDIDATES).with_for_update()
        )
    ).all()
    signed = next((c for c in rows if siws.signature_valid(address, signature, c.message)), None)
    if signed is None:
        raise ChallengeFailure(
            "bad_signature", "signature does not match a challenge issued for this address"
        )
    if signed.used_at is not None:
        raise ChallengeFailure("nonce_reused", "this challenge was already used")
    now = datetime.now(UTC)
    if signed.expires_at <= now:
        raise ChallengeFailure("challenge_expired", "the challenge expired; request a new one")
    if purpose is not None and signed.purpose != purpose:
        issued_for = "link a wallet" if signed.purpose == "link" else "sign in"
        raise ChallengeFailure(
            "wrong_purpose",
            f"this challenge was issued to {issued_for}; request one with purpose {purpose!r}",
        )
    signed.used_at = now
    await session.flush()
    return signed


async def _login_failed(
    uow: UnitOfWork,
    ctx: AuditContext,
    address: str,
    reason: str,
    user_id: uuid.UUID | None = None,
) -> None:
    await record(
        uow.session,
        AuditContext(actor_id=user_id, ip=ctx.ip),
        "auth.wallet_login_failed",
        "wallet",
        address,
        {"address": address, "reason": reason},
    )
    await uow.commit()  # the refusal is audited: commit it, then refuse


async def wallet_login(
    uow: UnitOfWork, ctx: AuditContext, address: str, signature: str, nonce: str | None
) -> TokenPair:
    """Tokens for the user who linked ``address``, exactly as a password login issues them."""
    session = uow.session
    wallet = await session.scalar(select(Wallet).where(Wallet.address == address))
    # An unlinked address is refused below whatever the challenge was for; consuming
    # it still keeps the signature from being replayed once the wallet is linked.
    purpose = "login" if wallet is not None else None
    try:
        await consume_challenge(session, address, signature, nonce, purpose)
    except ChallengeFailure as failure:
        await uow.rollback()
        await _login_failed(uow, ctx, address, failure.reason)
        raise unauthorized(failure.detail) from None
    user = await session.get(User, wallet.user_id) if wallet is not None else None
    if user is None:
        await _login_failed(uow, ctx, address, "wallet_not_linked")
        raise unauthorized("no account has linked this wallet", code="wallet_not_linked")
    tokens = await issue_tokens(session, user)
    await record(
        session,
        AuditContext(user.id, ctx.ip),
        "auth.wallet_login",
        "wallet",
        wallet.id if wallet else None,
        {"address": address},
    )
    return tokens


async def link_wallet(
    uow: UnitOfWork,
    ctx: AuditContext,
    user: User,
    address: str,
    signature: str,
    nonce: str | None,
) -> Wallet:
    """Link ``address`` to ``user`` after proof of control; 409 when already linked."""
    session = uow.session
    owner = await session.scalar(select(Wallet.user_id).where(Wallet.address == address))
    # A linked address is a 409 below whatever the challenge was for (nothing is written).
    purpose = "link" if owner is None else None
    try:
        await consume_challenge(session, address, signature, nonce, purpose)
    except ChallengeFailure as failure:
        raise unauthorized(failure.detail) from None
    if owner is not None:
        whose = "your account" if owner == user.id else "another account"
        raise conflict(f"this wallet is already linked to {whose}")
    wallet = Wallet(id=uuid.uuid4(), user_id=user.id, address=address, linked_at=datetime.now(UTC))
    session.add(wallet)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent link of the same address won
        raise conflict("this wallet is already linked to another account") from exc
    await record(session, ctx, "wallet.link", "wallet", wallet.id, {"address": address})
    return wallet


async def list_wallets(
    session: AsyncSession, user: User, *, limit: int, cursor: str | None
) -> tuple[list[Wallet], str | None]:
    stmt: Select[Any] = select(Wallet).where(Wallet.user_id == user.id)
    rows, next_cursor = await paginate(
        session, stmt, Wallet.linked_at, Wallet.id, limit=limit, cursor=cursor
    )
    return list(rows), next_cursor


async def purge_expired_challenges(session: AsyncSession, batch: int = 1000) -> int:
    """Delete up to ``batch`` challenges that expired over :data:`RETENTION` ago (caller
    commits); rows a login holds right now are skipped, not waited for."""
    due = (
        select(WalletChallenge.nonce)
        .where(WalletChallenge.expires_at < func.now() - RETENTION)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        delete(WalletChallenge).where(WalletChallenge.nonce.in_(due.scalar_subquery()))
    )
    return int(getattr(result, "rowcount", 0) or 0)
