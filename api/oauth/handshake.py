"""Sign-ins in flight, kept server-side in Redis with an expiry, each usable once.

A started sign-in stores its ``nonce``, PKCE verifier, the app's ``redirect_uri``
and (when linking) the signed-in user under its random ``state``; the browser only
ever carries the state. A finished sign-in that goes back to an app stores the user
under a one-time code. Entries are keyed by the SHA-256 of the random value (a copy
of Redis holds nothing a browser could present), expire on their own
(``ECE_OAUTH_STATE_TTL_SECONDS``, ``ECE_OAUTH_CODE_TTL_SECONDS``) and are read with
``GETDEL``: of two requests presenting the same state or code, exactly one gets it,
so a replayed callback or exchange finds nothing.

Redis is the only store here: without it no sign-in can start or finish (503
``unavailable``), which is safer than accepting a state nobody can check.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import asdict, dataclass

from redis.exceptions import RedisError

from api.core.cache import get_redis
from api.core.problems import Problem
from ece.settings import get_settings

STATE_PREFIX = "ece:oauth:state:"
CODE_PREFIX = "ece:oauth:code:"


@dataclass(frozen=True)
class Pending:
    """What the callback needs to finish a sign-in started by ``/authorize``."""

    provider: str
    nonce: str
    verifier: str
    redirect_uri: str | None = None
    app_state: str | None = None
    link_user_id: str | None = None  # set: link to this user instead of signing in


@dataclass(frozen=True)
class Finished:
    """A finished sign-in waiting for ``POST /auth/oauth/exchange``."""

    provider: str
    user_id: str


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def state_key(state: str) -> str:
    return STATE_PREFIX + _digest(state)


def code_key(code: str) -> str:
    return CODE_PREFIX + _digest(code)


def _unavailable(exc: RedisError) -> Problem:
    return Problem(503, "unavailable", f"sign-in state store unavailable ({type(exc).__name__})")


async def _put(key: str, value: dict[str, str | None], ttl: int) -> None:
    try:
        await get_redis().set(key, json.dumps(value), ex=ttl)
    except RedisError as exc:
        raise _unavailable(exc) from exc


async def _take(key: str) -> dict[str, str] | None:
    try:
        raw = await get_redis().getdel(key)
    except RedisError as exc:
        raise _unavailable(exc) from exc
    return json.loads(raw) if raw else None


async def begin(
    provider: str,
    redirect_uri: str | None = None,
    app_state: str | None = None,
    link_user_id: uuid.UUID | None = None,
) -> tuple[str, Pending]:
    """A new state with its nonce and PKCE verifier, stored until the callback or expiry."""
    state = secrets.token_urlsafe(32)
    pending = Pending(
        provider=provider,
        nonce=secrets.token_urlsafe(32),
        verifier=secrets.token_urlsafe(64),  # 86 characters (RFC 7636: 43 to 128)
        redirect_uri=redirect_uri,
        app_state=app_state,
        link_user_id=str(link_user_id) if link_user_id else None,
    )
    await _put(state_key(state), asdict(pending), get_settings().oauth_state_ttl_seconds)
    return state, pending


async def take(state: str) -> Pending | None:
    """The sign-in started with ``state``, removed so that nobody can use it again."""
    found = await _take(state_key(state))
    return Pending(**found) if found else None


async def finish(provider: str, user_id: uuid.UUID) -> str:
    """A one-time code the app exchanges for tokens (``POST /auth/oauth/exchange``)."""
    code = secrets.token_urlsafe(32)
    await _put(code_key(code), asdict(Finished(provider, str(user_id))),
               get_settings().oauth_code_ttl_seconds)
    return code


async def redeem(code: str) -> Finished | None:
    """The sign-in behind a one-time code, removed on first use."""
    found = await _take(code_key(code))
    return Finished(**found) if found else None
