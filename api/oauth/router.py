"""``/auth/oauth/*`` and ``/me/identities``: HTTP translation only (rules in ``service``).

The callback answers in one of four ways: sign-in without ``redirect_uri`` 200 tokens;
sign-in with one 302 to it with ``?code=<one-time code>&state=<the app's state>`` (the
app calls ``POST /auth/oauth/exchange``; tokens never travel in a URL); linking 201
(200 when already linked) the identity, or 302 to ``redirect_uri?linked=<provider>``.
``DELETE /me/identities/{provider}`` unlinks (never the account's last way in).
"""

from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.responses import RedirectResponse

from api.audit.chain import AuditContext
from api.auth.deps import CurrentUser, anonymous_context
from api.auth.schemas import TokenPair
from api.core.db import SessionDep
from api.core.problems import problem_responses
from api.core.uow import UowDep
from api.oauth import handshake, providers, service
from api.oauth.schemas import (
    AppState,
    AuthorizationOut,
    ExchangeIn,
    IdentityOut,
    IdentityPage,
    LinkIn,
    ProviderOut,
    RedirectUri,
    UnlinkIn,
)
from api.web.deps import UserCtx
from api.web.lockout import login_attempts

router = APIRouter(tags=["oauth"])

AnonCtx = Annotated[AuditContext, Depends(anonymous_context)]
NO_STORE = {"Cache-Control": "no-store"}  # token-bearing answers (RFC 6749 §5.1)
Param = Annotated[str | None, Query(max_length=4096)]


def _with_query(url: str, **params: str | None) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


@router.get("/auth/oauth/providers", response_model=list[ProviderOut])
async def list_providers() -> list[ProviderOut]:
    """The configured OpenID Connect providers, in configuration order."""
    return [
        ProviderOut(name=p.name, display_name=p.config.display_name)
        for p in providers.configured().values()
    ]


@router.get(
    "/auth/oauth/{provider}/authorize",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses=problem_responses(404, 422, 502, 503),
)
async def authorize(
    provider: str,
    redirect_uri: Annotated[RedirectUri | None, Query()] = None,
    state: Annotated[AppState | None, Query()] = None,
) -> RedirectResponse:
    """302 to the provider (code flow, PKCE S256, state, nonce). ``redirect_uri`` must be
    on the provider's allow-list (422 ``redirect_uri_not_allowed``); ``state`` is the
    app's own, given back on that redirect."""
    url = await service.start(
        providers.provider(provider), redirect_uri=redirect_uri, app_state=state
    )
    return RedirectResponse(url, status_code=status.HTTP_302_FOUND)


@router.get(
    "/auth/oauth/{provider}/callback",
    response_model=TokenPair,
    responses={
        201: {"model": IdentityOut, "description": "a link flow: the identity linked"},
        302: {"description": "to the allowed redirect_uri with ?code (or ?linked) and ?state"},
        **problem_responses(401, 403, 404, 409, 422, 502, 503),
    },
)
async def callback(
    provider: str,
    uow: UowDep,
    ctx: AnonCtx,
    code: Param = None,
    state: Param = None,
    error: Param = None,
    iss: Param = None,
) -> Response:
    """Finish a sign-in or link. 401: bad or used ``state`` (``invalid_state``), refused or
    replayed code (``invalid_code``), ``nonce_mismatch``, ``id_token_expired``,
    ``invalid_id_token``, ``access_denied``; 403 ``email_not_verified``; 409
    ``account_exists`` (link from ``/me/identities``) or ``identity_in_use``."""
    outcome = await service.complete(
        uow, ctx, provider, code=code, state=state, error=error, issuer=iss
    )
    target, app_state = outcome.pending.redirect_uri, outcome.pending.app_state
    if outcome.linked:
        if target:
            return RedirectResponse(_with_query(target, linked=provider, state=app_state),
                                    status_code=status.HTTP_302_FOUND)
        body = IdentityOut.model_validate(outcome.identity)
        return uow.reply(body, status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK)
    if target:
        one_time = await handshake.finish(provider, outcome.user.id)
        return RedirectResponse(_with_query(target, code=one_time, state=app_state),
                                status_code=status.HTTP_302_FOUND, headers=NO_STORE)
    answer = uow.reply(await service.sign_in(uow, ctx, outcome.user, provider))
    answer.headers.update(NO_STORE)
    return answer


@router.post("/auth/oauth/exchange", response_model=TokenPair,
             responses=problem_responses(401, 422, 503))
async def exchange(body: ExchangeIn, uow: UowDep, ctx: AnonCtx, response: Response) -> TokenPair:
    """Tokens for the one-time code the callback gave the app (once; 401 ``invalid_code``)."""
    response.headers.update(NO_STORE)
    return await service.exchange(uow, ctx, body.code)


@router.post("/me/identities/{provider}", response_model=AuthorizationOut,
             responses=problem_responses(401, 404, 422, 502, 503))
async def link(provider: str, user: CurrentUser, body: LinkIn | None = None) -> AuthorizationOut:
    """Start linking a provider account to the caller: send the browser to
    ``authorization_url``; the callback links it (201 identity)."""
    wanted = body or LinkIn()
    url = await service.start(providers.provider(provider), redirect_uri=wanted.redirect_uri,
                              app_state=wanted.state, link_user=user)
    return AuthorizationOut(authorization_url=url)


@router.delete("/me/identities/{provider}", status_code=status.HTTP_204_NO_CONTENT,
               responses=problem_responses(401, 404, 409, 422, 429))
async def unlink(provider: str, uow: UowDep, user: CurrentUser, ctx: UserCtx,
                 body: UnlinkIn | None = None) -> Response:
    """Remove the caller's identity at ``provider`` (a provider since removed from the
    configuration too). The last identity needs the account's password (409
    ``last_sign_in_method`` without it); a wrong one counts as a failed login."""
    password = body.password if body else None
    if password is None:
        await service.unlink(uow, ctx, user, provider, None)
    else:
        async with login_attempts(f"user:{user.id}", ctx.ip):
            await service.unlink(uow, ctx, user, provider, password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me/identities", response_model=IdentityPage, responses=problem_responses(401))
async def list_identities(session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """The provider accounts linked to the caller (one per provider at most)."""
    rows = await service.identities(session, user)
    return {"items": [IdentityOut.model_validate(r) for r in rows], "next_cursor": None}
