"""Passwords (argon2id), access tokens (HS256 JWT) and opaque refresh tokens.

Access tokens are short-lived and verified without the database; refresh tokens
are random strings whose SHA-256 is stored, so a leaked table cannot be replayed.
Argon2 is deliberately slow (~50 ms), so hashing runs in a worker thread to keep
the event loop serving other requests.
"""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import jwt
from anyio import to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from api.core.problems import unauthorized
from ece.settings import get_settings

ISSUER = "ece"
ALGORITHM = "HS256"


@lru_cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


# A real hash of a random password: verifying against it when the user does not exist
# makes unknown-login and wrong-password answers take the same time.
@lru_cache
def _dummy_hash() -> str:
    return _hasher().hash(secrets.token_urlsafe(16))


async def hash_password(password: str) -> str:
    return await to_thread.run_sync(_hasher().hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher().verify(password_hash or _dummy_hash(), password) and bool(
                password_hash
            )
        except (VerificationError, InvalidHashError):
            return False

    return await to_thread.run_sync(check)


def needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    role: str
    session_family: uuid.UUID | None


def create_access_token(
    user_id: uuid.UUID, role: str, session_family: uuid.UUID | None = None
) -> tuple[str, int]:
    """A signed access token and its lifetime in seconds."""
    settings = get_settings()
    ttl = settings.access_token_ttl_seconds
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "iss": ISSUER,
        "sub": str(user_id),
        "role": role,
        "typ": "access",
        "iat": now,
        "exp": now + timedelta(seconds=ttl),
        "jti": secrets.token_hex(8),
    }
    if session_family is not None:
        claims["sid"] = str(session_family)
    return jwt.encode(claims, settings.jwt_key, algorithm=ALGORITHM), ttl


def decode_access_token(token: str) -> AccessClaims:
    try:
        claims = jwt.decode(
            token,
            get_settings().jwt_key,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"]},
        )
        if claims.get("typ") != "access":
            raise jwt.InvalidTokenError("not an access token")
        sid = claims.get("sid")
        return AccessClaims(
            user_id=uuid.UUID(claims["sub"]),
            role=str(claims.get("role", "user")),
            session_family=uuid.UUID(sid) if sid else None,
        )
    except (jwt.PyJWTError, ValueError, KeyError) as exc:
        raise unauthorized("invalid or expired access token") from exc


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
