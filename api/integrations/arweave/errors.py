"""Errors a caller can act on: retry later, fix the request, or look elsewhere."""

from __future__ import annotations


class ArweaveError(RuntimeError):
    """Base class of everything this client raises on purpose."""


class GatewayUnavailable(ArweaveError):
    """Transient failures persisted past the retry budget (network, 429, 5xx).

    Raised only after exponential backoff gave up, so callers should surface it
    (or requeue the work) rather than retry in a tight loop themselves.
    """


class TransactionRejected(ArweaveError):
    """The gateway refused a transaction (bad signature, data root, anchor, ...).

    Retrying the same bytes cannot help; the transaction must be rebuilt.
    """

    def __init__(self, tx_id: str, status: int, body: str) -> None:
        self.tx_id, self.status, self.body = tx_id, status, body
        super().__init__(f"transaction {tx_id} rejected: HTTP {status} {body[:200]!r}")


class InsufficientFunds(TransactionRejected):
    """The wallet cannot pay the reward (HTTP 410 on arlocal and on Arweave nodes)."""


class NotFound(ArweaveError):
    """The gateway does not know this transaction (or has no data for it)."""


class NotLocalGateway(ArweaveError):
    """Minting and mining exist only on a local arlocal gateway, never on mainnet."""
