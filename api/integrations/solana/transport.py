"""RPC calls with retries, and send-then-confirm for transactions.

Why this layer: public RPC endpoints fail transiently all the time (timeouts,
429, 5xx, unhealthy nodes). Those are retried with exponential backoff and
jitter, and when retries run out we raise ``ChainUnavailable`` loudly instead of
returning a half-known state. Errors that retrying cannot fix (the program
failed, bad params) surface at once as their own classes. Sending follows the
standard Solana pattern: sign against a fresh blockhash, poll the signature
status, and only re-sign with a new blockhash once the old one has expired (at
that point the first transaction can no longer land, so no double execution).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import httpx
import structlog
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.rpc.errors import (
    InternalErrorMessage,
    NodeUnhealthyMessage,
    SendTransactionPreflightFailureMessage,
)
from solders.rpc.responses import GetSignatureStatusesResp, RpcBlockhash
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionConfirmationStatus, TransactionErrorFieldless
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from api.integrations.solana.errors import (
    ChainUnavailable,
    RpcRejected,
    TransactionExpired,
    TransactionFailed,
)

log = structlog.get_logger("api.integrations.solana")
T = TypeVar("T")
MAX_TX_SIZE = 1232  # bytes: one IPv6 MTU minus headers, the cluster's packet limit


class _Transient(Exception):
    """Internal marker: this attempt may succeed if repeated."""


class _BlockhashNotFound(Exception):
    """Internal marker: the node does not know our blockhash; re-sign with a fresh one."""


def _classify(exc: Exception) -> Exception:
    """Map a client exception to transient / permanent classes."""
    if isinstance(exc, SolanaRpcException | httpx.HTTPError | OSError | TimeoutError):
        status = getattr(getattr(exc.__cause__, "response", None), "status_code", None)
        if status is not None and status < 500 and status != 429:
            return RpcRejected(f"HTTP {status}: {exc}")
        return _Transient(str(exc))
    if isinstance(exc, RPCException):
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, NodeUnhealthyMessage | InternalErrorMessage):
            return _Transient(str(detail.message))
        if isinstance(detail, SendTransactionPreflightFailureMessage):
            err = detail.data.err
            if err == TransactionErrorFieldless.BlockhashNotFound:
                return _BlockhashNotFound()
            return TransactionFailed(None, str(err), list(detail.data.logs or []))
        message = getattr(detail, "message", str(detail))
        return RpcRejected(str(message))
    return exc


async def call(
    what: str,
    fn: Callable[[], Awaitable[T]],
    *,
    attempts: int = 6,
    max_seconds: float = 30.0,
) -> T:
    """Run one RPC call, retrying transient failures with backoff + jitter."""
    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(_Transient),
            wait=wait_exponential_jitter(multiplier=0.1, max=4.0, jitter=0.3),
            stop=stop_after_attempt(attempts) | stop_after_delay(max_seconds),
            reraise=False,
        ):
            with attempt:
                try:
                    return await fn()
                except Exception as exc:  # noqa: BLE001 - classified and re-raised just below
                    mapped = _classify(exc)
                    if mapped is exc:
                        raise
                    if isinstance(mapped, _Transient):
                        log.warning(
                            "rpc_transient_error",
                            call=what,
                            error=str(exc),
                            attempt=attempt.retry_state.attempt_number,
                        )
                    raise mapped from exc
    except RetryError as exc:
        last = exc.last_attempt.exception()
        log.error(
            "rpc_gave_up", call=what, attempts=exc.last_attempt.attempt_number, error=str(last)
        )
        raise ChainUnavailable(
            f"{what}: gave up after {exc.last_attempt.attempt_number} attempts: {last}"
        ) from last
    raise AssertionError("unreachable")  # pragma: no cover - AsyncRetrying always yields


async def confirm(
    client: AsyncClient,
    signature: Signature,
    last_valid_block_height: int,
    *,
    timeout: float = 90.0,  # noqa: ASYNC109 - a polling deadline, not a cancel scope
) -> None:
    """Wait until the signature is confirmed; raise on failure or expiry.

    Polls getSignatureStatuses with a growing delay (fast locally, gentle on
    public endpoints) and checks the block height so an expired transaction is
    reported as such rather than as a timeout.
    """
    deadline = time.monotonic() + timeout
    polls = 0
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(_Transient),
        wait=wait_exponential_jitter(multiplier=0.01, max=1.0, jitter=0.05),
        stop=stop_after_delay(timeout + 5),  # our own deadline check fires first
        reraise=True,
    ):
        with attempt:
            polls += 1
            resp = await call(
                "getSignatureStatuses", lambda: client.get_signature_statuses([signature])
            )
            status = resp.value[0]
            if status is not None and status.err is not None:
                tx = await _transaction_logs(client, signature)
                raise TransactionFailed(str(signature), str(status.err), tx)
            if status is not None and status.confirmation_status in (
                TransactionConfirmationStatus.Confirmed,
                TransactionConfirmationStatus.Finalized,
            ):
                return
            if polls % 5 == 0:
                height = (
                    await call("getBlockHeight", lambda: client.get_block_height(Confirmed))
                ).value
                if height > last_valid_block_height:
                    raise TransactionExpired(str(signature))
            if time.monotonic() > deadline:
                break
            raise _Transient("not confirmed yet")
    raise TransactionExpired(
        str(signature), f"transaction {signature} not confirmed in {timeout:.0f}s"
    )


async def _transaction_logs(client: AsyncClient, signature: Signature) -> list[str]:
    """Program logs of a failed transaction, best effort (for the error report)."""
    try:
        resp = await client.get_transaction(signature, max_supported_transaction_version=0)
    except Exception:  # noqa: BLE001 - logs are a nicety; the failure is already known
        return []
    value = resp.value
    meta = value.transaction.meta if value is not None else None
    return list(meta.log_messages or []) if meta is not None else []


async def send_and_confirm(
    client: AsyncClient,
    payer: Keypair,
    instructions: Sequence[Instruction],
    signers: Sequence[Keypair] = (),
    *,
    resign_attempts: int = 3,
    confirm_timeout: float = 90.0,
) -> Signature:
    """Sign, send and confirm one transaction; returns its signature.

    Re-signs with a new blockhash only when the node did not know the old one or
    the old one expired unconfirmed; both mean the previous copy cannot land.
    """
    all_signers = [payer, *[s for s in signers if s.pubkey() != payer.pubkey()]]
    last_error: Exception | None = None
    previous_blockhash = None
    for _ in range(resign_attempts):
        latest = await _fresh_blockhash(client, previous_blockhash)
        previous_blockhash = latest.blockhash
        message = MessageV0.try_compile(payer.pubkey(), list(instructions), [], latest.blockhash)
        tx = VersionedTransaction(message, all_signers)
        raw = bytes(tx)
        if len(raw) > MAX_TX_SIZE:
            raise ValueError(f"transaction is {len(raw)} bytes; the limit is {MAX_TX_SIZE}")
        signature = tx.signatures[0]
        opts = TxOpts(skip_confirmation=True, skip_preflight=False, preflight_commitment=Confirmed)
        sends = 0

        async def send(raw: bytes = raw, opts: TxOpts = opts) -> object:
            nonlocal sends
            sends += 1
            return await client.send_raw_transaction(raw, opts)

        try:
            await call("sendTransaction", send)
        except _BlockhashNotFound as exc:
            last_error = exc
            continue
        except TransactionFailed as exc:
            if exc.err != str(TransactionErrorFieldless.AlreadyProcessed):
                exc.signature = str(signature)
                raise
            if sends == 1:
                # Not our earlier copy: an identical message (same blockhash) ran before,
                # e.g. A->B, B->A, A->B within one slot. Re-sign with the next blockhash.
                log.info("identical_tx_resigning", signature=str(signature))
                last_error = exc
                continue
            # Our own first copy got through before a transport retry: confirm it.
        try:
            await confirm(
                client, signature, latest.last_valid_block_height, timeout=confirm_timeout
            )
        except TransactionExpired as exc:
            last_error = exc
            log.warning("tx_expired_resigning", signature=str(signature))
            continue
        return signature
    raise TransactionExpired(
        "?", f"no confirmation after {resign_attempts} blockhashes: {last_error}"
    )


BLOCKHASH_REUSE_SECONDS = 2.0  # a blockhash lives ~60 s; reusing it briefly saves a call/tx
_blockhash_cache: weakref.WeakKeyDictionary[AsyncClient, tuple[RpcBlockhash, float]] = (
    weakref.WeakKeyDictionary()
)


async def _fresh_blockhash(client: AsyncClient, not_this: Hash | None) -> RpcBlockhash:
    """A recent blockhash, reused for a couple of seconds; never ``not_this``.

    Reuse is safe because an identical message under the same blockhash is caught
    (AlreadyProcessed on the first send) and re-signed with a different blockhash.
    """
    cached = _blockhash_cache.get(client)
    if (
        cached is not None
        and cached[0].blockhash != not_this
        and time.monotonic() - cached[1] < BLOCKHASH_REUSE_SECONDS
    ):
        return cached[0]
    for _ in range(20):
        latest = (
            await call("getLatestBlockhash", lambda: client.get_latest_blockhash(Confirmed))
        ).value
        if latest.blockhash != not_this:
            _blockhash_cache[client] = (latest, time.monotonic())
            return latest
        await asyncio.sleep(0.1)  # wait for the next slot's blockhash
    return latest


# --- pipelined sends (many transactions, confirmed together) ----------------------------

STATUS_BATCH = 256  # getSignatureStatuses accepts up to 256 signatures per call


async def fresh_blockhash(client: AsyncClient) -> RpcBlockhash:
    """A recent blockhash (shared briefly by concurrent senders, see ``_fresh_blockhash``)."""
    return await _fresh_blockhash(client, None)


def sign_transaction(
    payer: Keypair, instructions: Sequence[Instruction], signers: Sequence[Keypair],
    blockhash: Hash,
) -> VersionedTransaction:
    """A signed v0 transaction, refused when over the packet limit (it could never land)."""
    all_signers = [payer, *[s for s in signers if s.pubkey() != payer.pubkey()]]
    message = MessageV0.try_compile(payer.pubkey(), list(instructions), [], blockhash)
    tx = VersionedTransaction(message, all_signers)
    size = len(bytes(tx))
    if size > MAX_TX_SIZE:
        raise ValueError(f"transaction is {size} bytes; the limit is {MAX_TX_SIZE}")
    return tx


async def send_signed(client: AsyncClient, tx: VersionedTransaction) -> Exception | None:
    """Send one signed transaction (retrying transport errors); the error instead of raising.

    ``AlreadyProcessed`` means this very transaction ran already: not an error.
    Expired or unknown blockhashes come back as :class:`TransactionExpired` so the
    caller re-signs later (the earlier copy can no longer land).
    """
    opts = TxOpts(skip_confirmation=True, skip_preflight=False, preflight_commitment=Confirmed)
    signature = str(tx.signatures[0])
    try:
        await call("sendTransaction", lambda: client.send_raw_transaction(bytes(tx), opts))
    except _BlockhashNotFound:
        return TransactionExpired(signature, "blockhash not found")
    except TransactionFailed as exc:
        if exc.err == str(TransactionErrorFieldless.AlreadyProcessed):
            return None
        exc.signature = signature
        return exc
    except (ChainUnavailable, RpcRejected) as exc:
        return exc
    return None


async def confirm_many(
    client: AsyncClient, signatures: Sequence[Signature], *, timeout: float = 30.0,  # noqa: ASYNC109
) -> dict[Signature, Exception | None]:
    """Poll getSignatureStatuses (256 per call) until each signature is confirmed or failed.

    Returns None for a confirmed signature, :class:`TransactionFailed` for one that
    failed on chain, :class:`TransactionExpired` for one still unknown at the deadline
    (left to the caller's next round: re-sending is idempotent for our mints).
    """
    result: dict[Signature, Exception | None] = {}
    waiting = list(signatures)
    deadline = time.monotonic() + timeout
    delay = 0.02
    while waiting:
        still: list[Signature] = []
        for start in range(0, len(waiting), STATUS_BATCH):
            chunk = waiting[start : start + STATUS_BATCH]

            async def statuses(chunk: list[Signature] = chunk) -> GetSignatureStatusesResp:
                return await client.get_signature_statuses(chunk)

            resp = await call("getSignatureStatuses", statuses)
            for signature, status in zip(chunk, resp.value, strict=True):
                if status is not None and status.err is not None:
                    logs = await _transaction_logs(client, signature)
                    result[signature] = TransactionFailed(str(signature), str(status.err), logs)
                elif status is not None and status.confirmation_status in (
                    TransactionConfirmationStatus.Confirmed,
                    TransactionConfirmationStatus.Finalized,
                ):
                    result[signature] = None
                else:
                    still.append(signature)
        waiting = still
        if waiting:
            if time.monotonic() > deadline:
                for signature in waiting:
                    result[signature] = TransactionExpired(str(signature))
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
    return result
