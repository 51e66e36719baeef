"""OpenID Connect sign-in and linking: which ECE user a provider account is.

The rules, in the order the callback applies them:

1. the ``state`` must be one we issued, unexpired, unused, for this provider;
2. the code is exchanged with our PKCE verifier and the ID token verified
   (``api.oauth.providers``): signature by the provider's JWKS, issuer, audience,
   expiry and our nonce;
3. a known ``(provider, sub)`` signs in its user, whatever the email says now;
4. linking (started from ``/me/identities`` while signed in) attaches the identity
   to that user, unless it belongs to someone else;
5. otherwise it is a first sign-in: it needs a verified email, and an email that an
   account already has is refused with 409 ``account_exists``, never merged: an
   attacker who controls some provider account with the victim's address must not
   get the victim's account. The owner signs in and links instead;
6. a new user is created exactly as registration creates one (custody key, ledger
   accounts, audit), with a random password nobody knows.

Unlinking (:func:`unlink`) never leaves an account without a way to sign in.

Tokens come from ``api.auth.service.issue_tokens``, the one issuer of tokens.
Every refusal after the request reached us is audited (``auth.login_failed``) and
committed before the 4xx, like a failed password login.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import EmailStr, Field, TypeAdapter, ValidationError
from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.chain import AuditContext, record
from api.auth.schemas import TokenPair
from api.auth.service import issue_tokens
from api.core.problems import Problem, conflict, not_found, unauthorized
from api.core.security import verify_password
from api.core.uow import UnitOfWork
from api.oauth import handshake, providers
from api.oauth.handshake import Pending
from api.oauth.models import OAuthIdentity
from api.oauth.providers import Provider
from api.users.models import User
from api.users.service import create_user

AUDITED_REFUSALS = (401, 403, 409)
# The rule of registration's email (``api.auth.schemas.RegisterIn.email``).
EMAIL: TypeAdapter[str] = TypeAdapter(Annotated[EmailStr, Field(max_length=320)])


@dataclass(frozen=True)
class Outcome:
    """A verified callback: the user it resolved to and how."""

    pending: Pending
    user: User
    identity: OAuthIdentity
    linked: bool  # a link flow (else a sign-in)
    created: bool  # the identity is new


async def start(
    p: Provider,
    *,
    redirect_uri: str | None,
    app_state: str | None,
    link_user: User | None = None,
) -> str:
    """The provider URL that begins a sign-in (or a link, for ``link_user``)."""
    if redirect_uri is not None and redirect_uri not in p.config.redirect_uris:
        raise Problem(422, "redirect_uri_not_allowed",
                      "redirect_uri is not on this provider's allow-list")
    state, pending = await handshake.begin(
        p.name, redirect_uri, app_state, link_user.id if link_user else None
    )
    return await providers.authorization_url(p, state, pending.nonce, pending.verifier)


async def complete(
    uow: UnitOfWork,
    ctx: AuditContext,
    name: str,
    *,
    code: str | None,
    state: str | None,
    error: str | None,
    issuer: str | None,
) -> Outcome:
    """Finish the sign-in the provider sent back (rules 1 to 6 of this module)."""
    p = providers.provider(name)
    pending = await handshake.take(state) if state else None
    try:
        if pending is None or pending.provider != name:
            raise unauthorized("unknown, expired or already used state", "invalid_state")
        if error:
            raise unauthorized(f"the provider refused the sign-in ({error[:100]})",
                               "access_denied")
        if issuer is not None and issuer != p.config.issuer:  # RFC 9207 mix-up defence
            raise unauthorized("the answer comes from another issuer", "invalid_state")
        if not code:
            raise unauthorized("no authorization code", "invalid_code")
        token = await providers.exchange_code(p, code, pending.verifier)
        claims = await providers.verify_id_token(p, token, pending.nonce)
        if pending.link_user_id:
            return await _link(uow.session, ctx, p, pending, claims)
        return await _sign_in_or_create(uow.session, ctx, p, pending, claims)
    except Problem as problem:
        if problem.status in AUDITED_REFUSALS:
            await _audit_refusal(uow, ctx, name, problem.code, pending)
        raise


async def _audit_refusal(
    uow: UnitOfWork, ctx: AuditContext, name: str, reason: str, pending: Pending | None
) -> None:
    """Record the refused sign-in and commit it: the 4xx that follows rolls back the rest."""
    await uow.rollback()
    user_id = uuid.UUID(pending.link_user_id) if pending and pending.link_user_id else None
    await record(uow.session, AuditContext(actor_id=user_id or ctx.actor_id, ip=ctx.ip),
                 "auth.login_failed", "user", user_id,
                 {"method": "oidc", "provider": name, "reason": reason})
    await uow.commit()


async def _identity(session: AsyncSession, name: str, subject: str) -> OAuthIdentity | None:
    return await session.scalar(
        select(OAuthIdentity)
        .where(OAuthIdentity.provider == name, OAuthIdentity.subject == subject)
        .with_for_update()
    )


def _email(claims: dict[str, Any]) -> str | None:
    """The claimed email, lowercased, if registration would accept it (else none)."""
    try:
        return EMAIL.validate_python(claims.get("email")).strip().lower()
    except ValidationError:
        return None


async def _attach(
    session: AsyncSession, ctx: AuditContext, p: Provider, user: User, claims: dict[str, Any]
) -> OAuthIdentity:
    identity = OAuthIdentity(
        provider=p.name, subject=claims["sub"], user_id=user.id, email=_email(claims)
    )
    session.add(identity)
    await session.flush()
    await record(session, AuditContext(actor_id=user.id, ip=ctx.ip), "identity.linked",
                 "oauth_identity", identity.id, {"provider": p.name})
    return identity


async def _link(
    session: AsyncSession, ctx: AuditContext, p: Provider, pending: Pending,
    claims: dict[str, Any],
) -> Outcome:
    user = await session.get(User, uuid.UUID(str(pending.link_user_id)))
    if user is None:
        raise unauthorized("the account that started linking is gone", "invalid_state")
    identity = await _identity(session, p.name, claims["sub"])
    if identity is not None:
        if identity.user_id != user.id:
            raise conflict("this provider account is linked to another user", "identity_in_use")
        return Outcome(pending, user, identity, linked=True, created=False)
    already = await session.scalar(select(exists().where(
        OAuthIdentity.user_id == user.id, OAuthIdentity.provider == p.name)))
    if already:
        raise conflict(f"another {p.config.display_name} account is linked already",
                       "identity_in_use")
    identity = await _attach(session, ctx, p, user, claims)
    return Outcome(pending, user, identity, linked=True, created=True)


async def _sign_in_or_create(
    session: AsyncSession, ctx: AuditContext, p: Provider, pending: Pending,
    claims: dict[str, Any],
) -> Outcome:
    identity = await _identity(session, p.name, claims["sub"])
    if identity is not None:
        user = await session.get(User, identity.user_id)
        if user is None:
            raise unauthorized("unknown user", "invalid_state")
        identity.email = _email(claims) or identity.email
        return Outcome(pending, user, identity, linked=False, created=False)
    email = _email(claims)
    if email is None or claims.get("email_verified") is not True:
        raise Problem(403, "email_not_verified",
                      "a first sign-in needs a valid, verified email at the provider")
    if await session.scalar(select(exists().where(User.email == email))):
        raise conflict("an account with this email exists: sign in to it and link this "
                       "provider from /me/identities", "account_exists")
    user = await create_user(
        session, ctx, email=email, username=await _free_username(session, claims, email),
        password=secrets.token_urlsafe(32),  # nobody knows it: this user signs in via p
    )
    identity = await _attach(session, ctx, p, user, claims)
    return Outcome(pending, user, identity, linked=False, created=True)


async def _free_username(session: AsyncSession, claims: dict[str, Any], email: str) -> str:
    """The provider's ``preferred_username`` (else the email's local part), cleaned to
    the username rules, with a random suffix when it is taken."""
    wanted = claims.get("preferred_username")
    base = re.sub(r"[^A-Za-z0-9_.-]", "", wanted if isinstance(wanted, str) else "")
    base = (base or re.sub(r"[^A-Za-z0-9_.-]", "", email.split("@")[0]))[:24]
    base = base if len(base) >= 3 else f"user{base}"
    candidate = base
    for _ in range(8):
        taken = await session.scalar(select(exists().where(
            func.lower(User.username) == candidate.lower())))
        if not taken:
            return candidate
        candidate = f"{base}-{secrets.token_hex(3)}"
    return f"user-{secrets.token_hex(8)}"


async def sign_in(uow: UnitOfWork, ctx: AuditContext, user: User, name: str) -> TokenPair:
    """Tokens for ``user``, as the password login issues them, with the login audited."""
    tokens = await issue_tokens(uow.session, user)
    await record(uow.session, AuditContext(user.id, ctx.ip), "auth.login", "user", user.id,
                 {"method": "oidc", "provider": name})
    return tokens


async def exchange(uow: UnitOfWork, ctx: AuditContext, code: str) -> TokenPair:
    """Tokens for a one-time code from the callback; 401 ``invalid_code`` if unknown,
    expired or used already."""
    finished = await handshake.redeem(code)
    user = await uow.session.get(User, uuid.UUID(finished.user_id)) if finished else None
    if finished is None or user is None:
        await record(uow.session, ctx, "auth.login_failed", "user", None,
                     {"method": "oidc", "reason": "invalid_code"})
        await uow.commit()
        raise unauthorized("unknown, expired or already used code", "invalid_code")
    return await sign_in(uow, ctx, user, finished.provider)


async def identities(session: AsyncSession, user: User) -> list[OAuthIdentity]:
    """The caller's linked identities, oldest first."""
    rows = await session.scalars(
        select(OAuthIdentity)
        .where(OAuthIdentity.user_id == user.id)
        .order_by(OAuthIdentity.created_at, OAuthIdentity.id)
    )
    return list(rows)


async def unlink(uow: UnitOfWork, ctx: AuditContext, user: User, provider: str,
                 password: str | None) -> None:
    """Remove the caller's identity at ``provider``, never the account's last way in.

    With another identity left, it goes. The last one goes only when the caller
    confirms the account's password, which proves a way in remains: an account that a
    provider sign-in created has a random password nobody knows, so it keeps its last
    identity (409 ``last_sign_in_method``). A wrong password is a failed login: 401
    ``invalid_password``, audited and counted by the login lockout (the router).
    The user row is locked first, so two removals at once cannot both see "another
    one is left" and remove both.
    """
    session = uow.session
    await session.execute(select(User.id).where(User.id == user.id).with_for_update())
    mine = await identities(session, user)
    identity = next((i for i in mine if i.provider == provider), None)
    if identity is None:
        raise not_found("linked identity")
    if len(mine) == 1:
        if password is None:
            raise conflict("this identity is the account's only sign-in method: send the "
                           "account's password to remove it", "last_sign_in_method")
        if not await verify_password(user.password_hash, password):
            await record(session, ctx, "auth.login_failed", "user", user.id,
                         {"reason": "bad_credentials", "during": "identity.unlink"})
            await uow.commit()
            raise unauthorized("wrong password", "invalid_password")
    await session.delete(identity)
    await record(session, ctx, "identity.unlinked", "oauth_identity", identity.id,
                 {"provider": provider})
