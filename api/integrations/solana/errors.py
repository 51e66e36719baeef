"""Errors of the chain client, split by what the caller should do next.

The mint saga decides between "retry later", "rebuild and resend" and "give up
and mark the NFT failed"; one class per decision keeps that logic out of
string matching on RPC messages.
"""

from __future__ import annotations


class ChainError(Exception):
    """Base class: something about the chain call went wrong."""


class ChainUnavailable(ChainError):
    """Transient RPC failures (network, 5xx, 429, unhealthy node) outlasted the retries.

    Nothing is known to have changed on chain; the caller may retry the whole step
    later (idempotence comes from the deterministic mint address and state checks).
    """


class TransactionExpired(ChainError):
    """The blockhash expired before the transaction was confirmed: it can no longer land."""

    def __init__(self, signature: str, message: str = "") -> None:
        self.signature = signature
        super().__init__(message or f"transaction {signature} expired before confirmation")


class TransactionFailed(ChainError):
    """The chain rejected or executed-and-failed the transaction: permanent for these inputs.

    ``err`` is the Solana TransactionError (as text), ``logs`` the program logs, so
    the failure can be recorded on the NFT and shown to an operator.
    """

    def __init__(self, signature: str | None, err: str, logs: list[str] | None = None) -> None:
        self.signature, self.err, self.logs = signature, err, list(logs or [])
        tail = "\n  ".join(self.logs[-8:])
        super().__init__(
            f"transaction {signature or '?'} failed: {err}" + (f"\n  {tail}" if tail else "")
        )

    @property
    def account_in_use(self) -> bool:
        """True when a create-account step found the address taken (already minted)."""
        return any("already in use" in line for line in self.logs)


class RpcRejected(ChainError):
    """The RPC answered with a non-transient error (bad params, unsupported method)."""
