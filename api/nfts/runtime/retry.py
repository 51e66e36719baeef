"""Error classes of the NFT workers and their retry policy: retry later, or give up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from api.nfts.runtime.scheduler import sleep_or_stop
from ece.retry import retry_async

log = structlog.get_logger("api.nfts.runtime")


def is_transient(exc: BaseException) -> bool:
    """Worth retrying with backoff: the network, a node, a gateway or the database is down.

    Everything that says "these inputs can never work" (a failed transaction, a
    rejected upload, a bad request) is permanent; unknown errors are decided by the
    caller (retried a few times, then treated as permanent).
    """
    import httpx
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    from api.integrations.arweave import GatewayUnavailable, InsufficientFunds
    from api.integrations.solana import ChainUnavailable, TransactionExpired
    from api.nfts.platform_keys import PlatformKeyUnfunded

    if isinstance(exc, ChainUnavailable | TransactionExpired | GatewayUnavailable):
        return True
    if isinstance(exc, InsufficientFunds | PlatformKeyUnfunded | PayerShort):
        return True
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OSError | TimeoutError | httpx.TransportError)


class PayerShort(RuntimeError):
    """The fee payer could not pay (balance ran out between checks): top up, then retry."""


def insufficient_funds(exc: BaseException) -> bool:
    """A chain failure caused by the fee payer's balance, not by the NFT itself."""
    text_ = f"{getattr(exc, 'err', '')} {' '.join(getattr(exc, 'logs', []) or [])}"
    return "InsufficientFunds" in text_ or "insufficient lamports" in text_


def is_permanent(exc: BaseException) -> bool:
    """These inputs can never work: record the failure instead of retrying."""
    from api.integrations.arweave import InsufficientFunds, TransactionRejected
    from api.integrations.solana import RpcRejected, TransactionFailed
    from api.nfts.service import PermanentMintError

    if isinstance(exc, InsufficientFunds):
        return False
    if isinstance(exc, TransactionFailed) and insufficient_funds(exc):
        return False
    return isinstance(
        exc, PermanentMintError | TransactionFailed | RpcRejected | TransactionRejected | ValueError
    )


async def with_retries(
    stop: asyncio.Event,
    what: str,
    fn: Callable[[], Awaitable[None]],
    *,
    budget_seconds: float,
    unexpected_attempts: int = 5,
) -> None:
    """Run ``fn`` until it returns, retrying transient failures with exponential backoff
    and jitter (:mod:`ece.retry`) for up to ``budget_seconds``; an unknown error is retried
    ``unexpected_attempts`` times. Re-raises the last error when giving up, so the
    caller decides: transient -> leave it to the next sweep, otherwise -> failed.
    """
    def should_retry(exc: BaseException, attempt: int) -> bool:
        if stop.is_set() or is_permanent(exc):
            return False
        return is_transient(exc) or attempt < unexpected_attempts

    await retry_async(fn, what=what, should_retry=should_retry, attempts=None,
                      budget_seconds=budget_seconds, base=0.5, cap=15.0, jitter=0.5,
                      sleep=lambda seconds: sleep_or_stop(stop, seconds), logger=log)
