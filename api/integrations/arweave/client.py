"""Async HTTP client for an Arweave gateway (arlocal locally, arweave.net in production).

Why our own client: the PyPI Arweave packages are unmaintained and disagree with
arweave-js on v2 signing; this one is small, typed, and verified against arweave-js
in ``tests/arweave``. Only what ECE needs: upload data with tags, read it back, follow
its confirmation, and (on arlocal only) fund wallets and mine blocks.

Network errors, 429 and 5xx are retried with exponential backoff plus jitter; when the
budget is spent the client raises :class:`GatewayUnavailable` naming the request and the
last error, instead of returning something that looks like success.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from api.integrations.arweave.errors import (
    GatewayUnavailable,
    InsufficientFunds,
    NotFound,
    NotLocalGateway,
    TransactionRejected,
)
from api.integrations.arweave.transaction import Tags, Transaction
from api.integrations.arweave.wallet import Wallet

log = structlog.get_logger(__name__)

T = TypeVar("T")
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class _TransientStatus(Exception):
    """An HTTP answer worth retrying (kept internal: callers see GatewayUnavailable)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        super().__init__(f"HTTP {response.status_code} {response.text[:200]!r}")


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TransportError | _TransientStatus)


@dataclass(frozen=True, slots=True)
class TxStatus:
    """Where a transaction is: not yet seen, waiting for a block, or in one."""

    state: Literal["not_found", "pending", "confirmed"]
    block_height: int | None = None
    block_hash: str | None = None
    confirmations: int = 0

    @property
    def confirmed(self) -> bool:
        return self.state == "confirmed"


class ArweaveClient:
    """One gateway, one pooled HTTP connection set. Use as ``async with``."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        attempts: int = 5,
        backoff_initial: float = 0.2,
        backoff_max: float = 5.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.attempts = attempts
        # delay = backoff_initial * 2**n + uniform(0, backoff_initial), capped: clients
        # that failed together spread out instead of retrying in lockstep.
        self._wait = wait_exponential_jitter(
            multiplier=backoff_initial, jitter=backoff_initial, max=backoff_max
        )
        self._http = http or httpx.AsyncClient(base_url=self.url, timeout=timeout)
        self._owns_http = http is None
        self._local: bool | None = None

    async def __aenter__(self) -> ArweaveClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # --- transport ------------------------------------------------------

    async def _retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        def note_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("arweave.retry", request=what, attempt=state.attempt_number, error=str(exc))

        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_is_transient),
                wait=self._wait,
                stop=stop_after_attempt(self.attempts),
                before_sleep=note_retry,
            ):
                with attempt:
                    return await call()
        except RetryError as exc:
            last = exc.last_attempt.exception()
            log.error("arweave.gave_up", request=what, attempts=self.attempts, error=str(last))
            raise GatewayUnavailable(
                f"{what} on {self.url} failed {self.attempts} times; last error: {last!r}"
            ) from last
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request with retries on transient failures; other statuses are returned."""

        async def call() -> httpx.Response:
            response = await self._http.request(method, path, **kwargs)
            if response.status_code in TRANSIENT_STATUS:
                raise _TransientStatus(response)
            return response

        return await self._retrying(f"{method} {path}", call)

    async def _get_ok(self, path: str) -> httpx.Response:
        response = await self._request("GET", path)
        if response.status_code == 404:
            raise NotFound(f"GET {path}: not found on {self.url}")
        if response.status_code != 200:
            raise GatewayUnavailable(
                f"GET {path} on {self.url}: HTTP {response.status_code} {response.text[:200]!r}"
            )
        return response

    # --- network --------------------------------------------------------

    async def info(self) -> dict[str, Any]:
        """``GET /info``: network name, height, current block."""
        body: dict[str, Any] = (await self._get_ok("/info")).json()
        return body

    async def is_local(self) -> bool:
        """True for an arlocal gateway (its network name starts with ``arlocal``)."""
        if self._local is None:
            self._local = str((await self.info()).get("network", "")).startswith("arlocal")
        return self._local

    async def tx_anchor(self) -> str:
        """A recent block hash: replay protection every transaction must carry."""
        return (await self._get_ok("/tx_anchor")).text.strip()

    async def price(self, data_size: int) -> int:
        """The reward (winston) the gateway asks to store ``data_size`` bytes."""
        return int((await self._get_ok(f"/price/{int(data_size)}")).text.strip())

    async def balance(self, address: str) -> int:
        text = (await self._get_ok(f"/wallet/{address}/balance")).text.strip()
        return int(text or 0)

    # --- writing --------------------------------------------------------

    async def create_transaction(
        self, data: bytes, tags: Tags | None, wallet: Wallet
    ) -> Transaction:
        """A signed transaction for ``data`` with a fresh anchor and the current price."""
        if not data:
            raise ValueError("an Arweave data transaction needs at least one byte of data")
        anchor, reward = await asyncio.gather(self.tx_anchor(), self.price(len(data)))
        tx = Transaction.build(data, owner=wallet.owner, last_tx=anchor, reward=reward, tags=tags)
        # RSA-4096 signing takes a few ms of CPU: keep the event loop free meanwhile.
        return await asyncio.to_thread(tx.signed, wallet)

    async def post(self, tx: Transaction) -> str:
        """Send a signed transaction (then its chunks when too big to go inline)."""
        response = await self._request("POST", "/tx", json=tx.to_json())
        if response.status_code == 410:
            raise InsufficientFunds(tx.id, response.status_code, response.text)
        if response.status_code not in (200, 208):  # 208: the node already has it
            raise TransactionRejected(tx.id, response.status_code, response.text)
        if not tx.inline:
            for body in tx.chunk_bodies():
                chunk = await self._request("POST", "/chunk", json=body)
                if chunk.status_code not in (200, 208):
                    raise TransactionRejected(tx.id, chunk.status_code, chunk.text)
        return tx.id

    async def upload(self, data: bytes, tags: Tags | None, wallet: Wallet) -> str:
        """Store ``data`` with ``tags`` (e.g. ``{"Content-Type": "application/json"}``).

        Returns the transaction id as soon as the gateway accepted it; confirmation
        follows when a block includes it (see :meth:`status`, :meth:`wait_confirmed`).
        """
        return await self.post(await self.create_transaction(data, tags, wallet))

    # --- reading --------------------------------------------------------

    async def get_data(self, tx_id: str) -> bytes:
        """The raw data of ``tx_id`` (``GET /{id}``: works for inline and chunked data)."""
        return (await self._get_ok(f"/{tx_id}")).content

    async def get_transaction(self, tx_id: str) -> Transaction:
        """The transaction header (owner, tags, signature...) as the gateway stored it."""
        return Transaction.from_json((await self._get_ok(f"/tx/{tx_id}")).json())

    async def status(self, tx_id: str) -> TxStatus:
        """``GET /tx/{id}/status``: 404 unknown, 202 (or arlocal's "Pending") pending."""
        response = await self._request("GET", f"/tx/{tx_id}/status")
        if response.status_code == 404:
            return TxStatus("not_found")
        if response.status_code == 202 or response.text.strip().strip('"') == "Pending":
            return TxStatus("pending")
        if response.status_code != 200:
            raise GatewayUnavailable(f"status of {tx_id}: HTTP {response.status_code}")
        body = response.json()
        return TxStatus(
            "confirmed",
            block_height=int(body["block_height"]),
            block_hash=str(body["block_indep_hash"]),
            confirmations=int(body.get("number_of_confirmations", 0)),
        )

    async def wait_confirmed(
        self, tx_id: str, *, within: float = 60.0, poll: float = 0.5
    ) -> TxStatus:
        """Poll :meth:`status` until the transaction is in a block (or ``within`` s pass)."""
        current = TxStatus("not_found")
        try:
            async with asyncio.timeout(within):
                while True:
                    current = await self.status(tx_id)
                    if current.confirmed:
                        return current
                    await asyncio.sleep(poll)  # a gateway offers no push: polling it is
        except TimeoutError:
            raise TimeoutError(
                f"{tx_id} not confirmed after {within:.0f}s (still {current.state})"
            ) from None

    # --- local gateway only ---------------------------------------------

    async def _require_local(self, what: str) -> None:
        if not await self.is_local():
            raise NotLocalGateway(f"{what} only exists on a local arlocal gateway, not {self.url}")

    async def mint(self, address: str, winston: int) -> int:
        """Give ``address`` free tokens (arlocal ``/mint``); returns the new balance."""
        await self._require_local("mint")
        return int((await self._get_ok(f"/mint/{address}/{int(winston)}")).text.strip())

    async def ensure_funded(self, wallet: Wallet, winston: int) -> int:
        """Top ``wallet`` up to at least ``winston`` on arlocal; returns the balance."""
        await self._require_local("funding")
        current = await self.balance(wallet.address)
        if current >= winston:
            return current
        return await self.mint(wallet.address, winston - current)

    async def mine(self, blocks: int = 1) -> dict[str, Any]:
        """Make ``blocks`` blocks now, confirming every pending transaction (arlocal)."""
        await self._require_local("mine")
        body: dict[str, Any] = (await self._get_ok(f"/mine/{int(blocks)}")).json()
        return body
