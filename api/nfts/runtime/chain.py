"""The workers' chain client: signatures recorded before sending, a funded fee payer."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any

from solana.rpc.async_api import AsyncClient
from solana.rpc.models import TxOpts
from solders.rpc.responses import SendTransactionResp
from solders.transaction import VersionedTransaction

SignatureHook = Callable[[str], Awaitable[None]]
_before_send: ContextVar[SignatureHook | None] = ContextVar("ece_before_send", default=None)


class RecordingClient(AsyncClient):
    """``AsyncClient`` whose ``send_raw_transaction`` first awaits the current hook.

    The hook (set per task with :func:`recording`) stores the signature in the
    database; only then do the bytes leave the process. Re-signs after an expired
    blockhash call it again with the new signature.
    """

    async def send_raw_transaction(
        self, txn: bytes, opts: TxOpts | None = None
    ) -> SendTransactionResp:
        hook = _before_send.get()
        if hook is not None:
            await hook(str(VersionedTransaction.from_bytes(bytes(txn)).signatures[0]))
        return await super().send_raw_transaction(txn, opts)


@contextlib.contextmanager
def recording(hook: SignatureHook) -> Iterator[None]:
    token = _before_send.set(hook)
    try:
        yield
    finally:
        _before_send.reset(token)


class FeePayerGuard:
    """Checks the fee payer's balance at most every ``every`` s (airdrops on a local node)."""

    def __init__(self, payer: Any, rpc_url: str, every: float = 30.0) -> None:
        self.payer = payer
        self.rpc_url = rpc_url
        self.every = every
        self._checked = 0.0

    async def ensure(self, client: AsyncClient) -> None:
        from api.nfts.platform_keys import ensure_fee_payer_funded

        if time.monotonic() - self._checked < self.every:
            return
        await ensure_fee_payer_funded(client, self.payer.pubkey(), self.rpc_url)
        self._checked = time.monotonic()

    def invalidate(self) -> None:
        self._checked = 0.0
