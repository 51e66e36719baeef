"""One retry policy for every ECE process: exponential backoff with jitter, bounded.

* :func:`backoff_delay`: the delay before retry number ``attempt`` (for loops that
  keep their own state, e.g. a supervisor counting failed cycles);
* :func:`retry_call` / :func:`retry_async`: run a callable until it returns, retrying
  what ``should_retry`` accepts, at most ``attempts`` times and/or for
  ``budget_seconds``. Each retry is logged (``retrying``), giving up is logged as an
  error (``retries_exhausted``) and re-raises the last error unchanged.

Built on tenacity; ``should_retry(exc, attempt)`` sees the failure and how many
attempts (1-based) have been made, so a caller can retry known-transient errors
for the whole budget and unknown ones only a few times.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    stop_after_attempt,
    stop_after_delay,
    stop_any,
    stop_never,
)
from tenacity.stop import stop_base

T = TypeVar("T")
ShouldRetry = Callable[[BaseException, int], bool]

log = structlog.get_logger("ece.retry")


def backoff_delay(attempt: int, *, base: float = 0.5, cap: float = 30.0,
                  jitter: float = 0.2) -> float:
    """``base * 2**(attempt-1)``, at most ``cap``, spread by +-``jitter`` (a fraction) so
    that processes failing together do not retry in lockstep. ``attempt`` is 1-based."""
    delay = min(cap, base * 2.0 ** max(attempt - 1, 0))
    return delay * random.uniform(1.0 - jitter, 1.0 + jitter)


def always(_exc: BaseException, _attempt: int) -> bool:
    return True


def on(*types: type[BaseException]) -> ShouldRetry:
    """Retry exactly these exception types."""
    return lambda exc, _attempt: isinstance(exc, types)


def _policy(what: str, should_retry: ShouldRetry, attempts: int | None,
            budget_seconds: float | None, base: float, cap: float, jitter: float,
            logger: Any) -> dict[str, Any]:
    logger = logger or log

    def retry_if(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        return exc is not None and should_retry(exc, state.attempt_number)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.warning("retrying", what=what, attempt=state.attempt_number,
                       retry_in_s=round(state.upcoming_sleep, 2),
                       error=f"{type(exc).__name__}: {exc}"[:500])

    def give_up(state: RetryCallState) -> Any:
        exc = state.outcome.exception() if state.outcome else None
        logger.error("retries_exhausted", what=what, attempts=state.attempt_number,
                     error=f"{type(exc).__name__}: {exc}"[:500])
        return state.outcome.result() if state.outcome else None  # re-raises the last error

    stops: list[stop_base] = []
    if attempts is not None:
        stops.append(stop_after_attempt(attempts))
    if budget_seconds is not None:
        stops.append(stop_after_delay(budget_seconds))
    stop = stop_any(*stops) if stops else stop_never

    return {
        "retry": retry_if,
        "wait": lambda state: backoff_delay(state.attempt_number, base=base, cap=cap,
                                            jitter=jitter),
        "stop": stop,
        "before_sleep": before_sleep,
        "retry_error_callback": give_up,
    }


def retry_call(fn: Callable[[], T], *, what: str, should_retry: ShouldRetry = always,
               attempts: int | None = 5, budget_seconds: float | None = None,
               base: float = 0.5, cap: float = 30.0, jitter: float = 0.2,
               sleep: Callable[[float], None] = time.sleep, logger: Any = None) -> T:
    """Call ``fn`` until it returns (blocking sleeps between attempts)."""
    policy = _policy(what, should_retry, attempts, budget_seconds, base, cap, jitter, logger)
    return Retrying(sleep=sleep, **policy)(fn)


async def retry_async(fn: Callable[[], Awaitable[T]], *, what: str,
                      should_retry: ShouldRetry = always, attempts: int | None = 5,
                      budget_seconds: float | None = None, base: float = 0.5,
                      cap: float = 30.0, jitter: float = 0.2,
                      sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                      logger: Any = None) -> T:
    """Await ``fn()`` until it returns; ``sleep`` may end early (e.g. on shutdown)."""
    policy = _policy(what, should_retry, attempts, budget_seconds, base, cap, jitter, logger)
    async for attempt in AsyncRetrying(sleep=sleep, **policy):
        with attempt:
            return await fn()
    raise AssertionError("unreachable: tenacity re-raises the last error")
