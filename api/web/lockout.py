"""Failed-login lockout and the wallet-challenge quota: limits that never fail open.

* :func:`login_attempts` guards password and wallet logins. An attempt is counted
  *before* it runs (a burst of concurrent guesses cannot slip past the check), kept
  when it ends in 401 and given back otherwise. Three counters share one window
  (``ECE_RATE_LIMIT_LOGIN_WINDOW_SECONDS``, 15 minutes):

  - per account **and** client address (``ECE_RATE_LIMIT_LOGIN_ACCOUNT``, 5): the
    lock a guesser runs into. It is per address so that a stranger who types the
    wrong password five times locks *their* address out of the account, not the
    owner;
  - per account over all addresses (``ECE_RATE_LIMIT_LOGIN_ACCOUNT_TOTAL``, 50): the
    ceiling for a guesser who rotates addresses;
  - per client address over all accounts (``ECE_RATE_LIMIT_LOGIN_IP``, 50): password
    spraying.

  Past any of them the attempt is refused with 429 (even with the right password)
  and is not counted, so hammering a locked door does not push the account's total
  towards the owner's lock. A success clears the account-and-address counter.
* :func:`challenge_quota` bounds Sign-In-With-Solana challenges per client address
  and per wallet address (``ECE_RATE_LIMIT_CHALLENGE_*``): each one is a database row.

Both count in Redis through :func:`api.web.ratelimit.hit`. While Redis is
unreachable they count in this process's memory instead (:class:`LocalCounters`):
the lockout keeps working, per process (with ``ECE_API_WORKERS`` processes an
attacker gets at most that many times the budget), and is never skipped. When the
memory table is full of live windows, further attempts are refused rather than
counted nowhere.

Accounts are keyed by user id when the login names a user (so switching between
email, username and wallet buys no extra guesses) and otherwise by a keyed hash of
the typed login: the typed string, often a password typed into the wrong field,
never becomes a Redis key.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.problems import Problem
from api.web import ratelimit
from api.web.ratelimit import Bucket, RateLimits, rate_limited, tightest
from ece.settings import get_settings

LOCAL_MAX_KEYS = 100_000
FULL_RETRY_MS = 60_000

Counter = tuple[str, int, int]  # key, limit, window seconds


class LocalCounters:
    """Fixed windows in process memory: the stand-in while Redis is unreachable.

    One event loop touches it and no method awaits, so no lock is needed.
    """

    def __init__(self, max_keys: int = LOCAL_MAX_KEYS) -> None:
        self.max_keys = max_keys
        self.windows: dict[str, tuple[int, float]] = {}  # key -> (count, ends, monotonic)

    def hit(self, counters: list[Counter]) -> list[Bucket]:
        now = time.monotonic()
        fresh = sum(1 for key, _, _ in counters if self.windows.get(key, (0, 0.0))[1] <= now)
        if len(self.windows) + fresh > self.max_keys:
            self.windows = {k: v for k, v in self.windows.items() if v[1] > now}
            if len(self.windows) + fresh > self.max_keys:
                # Full of live windows: refuse rather than forget a counter.
                return [Bucket(key, limit, limit + 1, FULL_RETRY_MS) for key, limit, _ in counters]
        buckets = []
        for key, limit, window in counters:
            count, ends = self.windows.get(key, (0, 0.0))
            if ends <= now:
                count, ends = 0, now + window
            self.windows[key] = (count + 1, ends)
            buckets.append(Bucket(key, limit, count + 1, int((ends - now) * 1000)))
        return buckets

    def give_back(self, keys: list[str], reset: str | None = None) -> None:
        for key in keys:
            count, ends = self.windows.get(key, (0, 0.0))
            if count > 0:
                self.windows[key] = (count - 1, ends)
        if reset is not None:
            self.windows.pop(reset, None)


local_counters = LocalCounters()


async def count(counters: list[Counter], where: str) -> tuple[list[Bucket], bool]:
    """Count one hit on each counter: ``(buckets, counted in Redis)``; never skipped."""
    buckets = await ratelimit.hit(counters, where)
    if buckets is not None:
        return buckets, True
    return local_counters.hit(counters), False


async def uncount(in_redis: bool, keys: list[str], reset: str | None = None) -> None:
    """Give back one hit on ``keys`` (and clear ``reset``) where :func:`count` counted it."""
    if in_redis:
        await ratelimit.give_back(keys, reset)
    else:
        local_counters.give_back(keys, reset)


def _keyed_hash(text: str) -> str:
    key = hashlib.sha256(b"ece login lockout\0" + get_settings().jwt_key.encode()).digest()
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]


async def login_account_key(session: AsyncSession, login: str) -> str:
    """The lockout key of a password login: the user if the login names one."""
    from api.users.models import User

    ident = login.strip().lower()
    user_id = await session.scalar(
        select(User.id).where(or_(User.email == ident, func.lower(User.username) == ident))
    )
    return f"user:{user_id}" if user_id else f"login:{_keyed_hash(ident[:320])}"


@asynccontextmanager
async def login_attempts(account: str, ip: str | None) -> AsyncIterator[None]:
    """Guard one login attempt; 429 while the account (from here or at all) or the
    client address is locked out.

    The body runs the login. A 401 leaving the block is a failure and stays
    counted; success clears the account-and-address failures and returns the other
    slots; any other outcome (422, 500, cancellation) returns every slot.
    """
    limits = RateLimits.from_env()
    if not limits.enabled:
        yield
        return
    client = ip or "unknown"
    pair_key = f"login:acct:{account}:ip:{client}"
    account_key = f"login:acct:{account}"
    ip_key = f"login:ip:{client}"
    keys = [pair_key, account_key, ip_key]
    window = limits.login_window_seconds
    buckets, in_redis = await count(
        [
            (pair_key, limits.login_account, window),
            (account_key, limits.login_account_total, window),
            (ip_key, limits.login_ip, window),
        ],
        "login",
    )
    bucket = tightest(buckets)
    if bucket.exceeded:
        await uncount(in_redis, keys)  # a refused attempt is no attempt
        whom = {
            pair_key: "this account from this client address",
            account_key: "this account",
        }.get(bucket.key, "this client address")
        raise rate_limited(bucket, f"too many failed logins for {whom}; retry later")
    try:
        yield
    except Problem as exc:
        if exc.status != 401:
            await uncount(in_redis, keys)
        raise
    except BaseException:
        await uncount(in_redis, keys)
        raise
    await uncount(in_redis, [account_key, ip_key], reset=pair_key)


async def challenge_quota(ip: str | None, address: str) -> None:
    """Count one wallet challenge for the client and the wallet address; 429 past either."""
    limits = RateLimits.from_env()
    if not limits.enabled:
        return
    window = limits.challenge_window_seconds
    ip_key, address_key = f"siws:ip:{ip or 'unknown'}", f"siws:address:{address}"
    buckets, in_redis = await count(
        [(ip_key, limits.challenge_ip, window), (address_key, limits.challenge_address, window)],
        "challenge",
    )
    bucket = tightest(buckets)
    if bucket.exceeded:
        await uncount(in_redis, [ip_key, address_key])
        whom = "wallet address" if bucket.key == address_key else "client address"
        raise rate_limited(
            bucket, f"more than {bucket.limit} wallet challenges in {window} s for this {whom}"
        )
