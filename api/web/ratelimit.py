"""Request rate limits and failed-login lockouts, counted in Redis.

Two mechanisms share one Lua script (atomic "increment these counters, start their
windows, tell me counts and time left" in one round trip):

* :class:`RateLimitMiddleware` counts every HTTP request per client IP and, when a
  valid bearer token is present, per user, in fixed windows (default 600 requests
  a minute per user, 1200 per IP). Over the limit: ``429 rate_limited`` with
  ``Retry-After``. Every counted answer carries ``RateLimit-Limit``,
  ``RateLimit-Remaining`` and ``RateLimit-Reset`` (IETF draft headers) for the
  tightest bucket. Health, readiness and metrics are exempt so probes and
  Prometheus never get throttled.
* ``api.web.lockout`` (failed-login lockout per account and client address, the
  wallet-challenge quota, and the in-process fallback that keeps both counting
  while Redis is unreachable) counts through :func:`hit` too.

Fixed windows are chosen over sliding ones for their cost (one INCR per bucket); the
price is that a client can burst up to twice the limit across a window boundary.

Redis down: requests are let through (fail open) and a warning is logged, with a
short circuit breaker so an outage costs one failed Redis call per few seconds
instead of one per request. Availability of the marketplace wins over throttling;
the database constraints, not the limiter, are what keep money and ownership safe.
Logins and wallet challenges never fail open: ``api.web.lockout`` counts them in
process memory while Redis is unreachable.

The client address is the ASGI ``client`` (the TCP peer): uvicorn replaces it
with ``X-Forwarded-For`` only when the peer is one of ``ECE_TRUSTED_PROXIES``
(none by default; see ``ops/stack/api.py``), so a client cannot pick its bucket.

Limits come from ``ece.settings.RateLimitSettings`` (the environment, through
``ece.settings.rate_limits()``) so benchmarks can raise them without code changes
(checked on every request, so a test can lower them for one app):

===========================================  =======  ==============================
variable                                     default  meaning
===========================================  =======  ==============================
``ECE_RATE_LIMIT_ENABLED``                   1        0 turns both mechanisms off
``ECE_RATE_LIMIT_USER``                      600      requests per window per user
``ECE_RATE_LIMIT_IP``                        1200     requests per window per IP
``ECE_RATE_LIMIT_WINDOW_SECONDS``            60       request window
``ECE_RATE_LIMIT_LOGIN_ACCOUNT``             5        failed logins per account + IP
``ECE_RATE_LIMIT_LOGIN_ACCOUNT_TOTAL``       50       failed logins per account
``ECE_RATE_LIMIT_LOGIN_IP``                  50       failed logins per IP
``ECE_RATE_LIMIT_LOGIN_WINDOW_SECONDS``      900      failed-login window
``ECE_RATE_LIMIT_CHALLENGE_IP``              100      wallet challenges per IP
``ECE_RATE_LIMIT_CHALLENGE_ADDRESS``         10       wallet challenges per address
``ECE_RATE_LIMIT_CHALLENGE_WINDOW_SECONDS``  300      wallet-challenge window
===========================================  =======  ==============================
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.core.cache import get_redis
from api.core.problems import Problem, problem_response
from ece.settings import RateLimitSettings, rate_limits

log = structlog.get_logger(__name__)

KEY_PREFIX = "ece:rl:"
EXEMPT_SUFFIXES = ("/healthz", "/readyz", "/metrics")
BREAKER_SECONDS = 5.0

# KEYS: counters; ARGV[i]: window of KEYS[i] in ms. Returns count, ms left per key.
# PTTL < 0 (new key, or one that somehow lost its TTL) starts the window.
HIT_LUA = """
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    ttl = tonumber(ARGV[i])
    redis.call('PEXPIRE', key, ttl)
  end
  out[2 * i - 1] = n
  out[2 * i] = ttl
end
return out
"""


_DEFAULTS = RateLimitSettings.model_construct()  # the defaults, no environment read


@dataclass(frozen=True)
class RateLimits:
    """The limits in force (see the module docstring for the variables)."""

    enabled: bool = _DEFAULTS.enabled
    user: int = _DEFAULTS.user
    ip: int = _DEFAULTS.ip
    window_seconds: int = _DEFAULTS.window_seconds
    login_account: int = _DEFAULTS.login_account
    login_account_total: int = _DEFAULTS.login_account_total
    login_ip: int = _DEFAULTS.login_ip
    login_window_seconds: int = _DEFAULTS.login_window_seconds
    challenge_ip: int = _DEFAULTS.challenge_ip
    challenge_address: int = _DEFAULTS.challenge_address
    challenge_window_seconds: int = _DEFAULTS.challenge_window_seconds

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RateLimits:
        """The limits the process environment sets now, or those ``environ`` would set."""
        group = rate_limits() if environ is None else RateLimitSettings.from_mapping(environ)
        return cls(**group.model_dump())


@dataclass(frozen=True)
class Bucket:
    """One counter after a hit: its limit, the count including this hit, ms left."""

    key: str
    limit: int
    count: int
    reset_ms: int

    @property
    def exceeded(self) -> bool:
        return self.count > self.limit

    @property
    def remaining(self) -> int:
        return max(self.limit - self.count, 0)

    @property
    def reset_seconds(self) -> int:
        return max(math.ceil(self.reset_ms / 1000), 1)


class _Breaker:
    """Skip Redis for a few seconds after it failed, logging once per outage."""

    def __init__(self) -> None:
        self.open_until = 0.0

    def allows(self) -> bool:
        return time.monotonic() >= self.open_until

    def trip(self, exc: Exception, where: str) -> None:
        if self.open_until == 0.0 or time.monotonic() >= self.open_until:
            log.warning("rate_limit_redis_unavailable", where=where, error=str(exc)[:200])
        self.open_until = time.monotonic() + BREAKER_SECONDS

    def close(self) -> None:
        self.open_until = 0.0


_breaker = _Breaker()
_scripts: dict[int, AsyncScript] = {}


def _script(redis: Redis) -> AsyncScript:
    """The registered script for this client (clients change when tests reset Redis)."""
    script = _scripts.get(id(redis))
    if script is None or script.registered_client is not redis:
        _scripts.clear()
        script = _scripts[id(redis)] = redis.register_script(HIT_LUA)
    return script


async def hit(counters: list[tuple[str, int, int]], where: str) -> list[Bucket] | None:
    """Count one hit on each ``(key, limit, window_seconds)``; None when Redis is down."""
    if not counters or not _breaker.allows():
        return None
    redis = get_redis()
    keys = [KEY_PREFIX + key for key, _, _ in counters]
    windows = [window * 1000 for _, _, window in counters]
    try:
        raw = await _script(redis)(keys=keys, args=windows)
    except (RedisError, OSError) as exc:
        _breaker.trip(exc, where)
        return None
    _breaker.close()
    return [
        Bucket(key, limit, int(raw[2 * i]), int(raw[2 * i + 1]))
        for i, (key, limit, _) in enumerate(counters)
    ]


async def give_back(keys: list[str], reset: str | None = None) -> None:
    """Undo one counted hit on ``keys`` and delete ``reset`` (best effort)."""
    if not _breaker.allows():
        return
    try:
        async with get_redis().pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.decr(KEY_PREFIX + key)
            if reset is not None:
                pipe.delete(KEY_PREFIX + reset)
            await pipe.execute()
    except (RedisError, OSError) as exc:
        _breaker.trip(exc, "give_back")


def limit_headers(bucket: Bucket) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(bucket.limit),
        "RateLimit-Remaining": str(bucket.remaining),
        "RateLimit-Reset": str(bucket.reset_seconds),
    }


def rate_limited(bucket: Bucket, detail: str) -> Problem:
    headers = {"Retry-After": str(bucket.reset_seconds), **limit_headers(bucket)}
    return Problem(429, "rate_limited", detail, headers=headers)


def tightest(buckets: list[Bucket]) -> Bucket:
    """The bucket to report: an exceeded one that frees up last, else the least remaining."""
    exceeded = [b for b in buckets if b.exceeded]
    if exceeded:
        return max(exceeded, key=lambda b: b.reset_ms)
    return min(buckets, key=lambda b: (b.remaining, b.limit))


# --- request limits (middleware) ------------------------------------------------


def _bearer_user(scope: Scope) -> str | None:
    """The user id of a valid access token, else None (invalid tokens count per IP only)."""
    from api.core.security import decode_access_token

    for name, value in scope.get("headers") or []:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not token:
                return None
            try:
                return str(decode_access_token(token.strip()).user_id)
            except Exception:  # noqa: BLE001 - any bad token: the route answers 401 itself
                return None
    return None


def _exempt(path: str) -> bool:
    return path.endswith(EXEMPT_SUFFIXES)


class RateLimitMiddleware:
    """Pure ASGI: counts the request, answers 429 or adds ``RateLimit-*`` headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        limits = RateLimits.from_env()
        if not limits.enabled:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        counters = [(f"ip:{ip}", limits.ip, limits.window_seconds)]
        user = _bearer_user(scope)
        if user is not None:
            counters.append((f"user:{user}", limits.user, limits.window_seconds))
        buckets = await hit(counters, "request")
        if buckets is None:
            await self.app(scope, receive, send)
            return
        bucket = tightest(buckets)
        if bucket.exceeded:
            who = "user" if bucket.key.startswith("user:") else "client address"
            problem = rate_limited(
                bucket,
                f"more than {bucket.limit} requests in {limits.window_seconds} s for this {who}",
            )
            await problem_response(problem, scope["path"])(scope, receive, send)
            return
        extra = [(k.lower().encode(), v.encode()) for k, v in limit_headers(bucket).items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                # A route that answered with its own limit (login lockout) keeps it.
                if not any(name == b"ratelimit-limit" for name, _ in headers):
                    message["headers"] = headers + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)
