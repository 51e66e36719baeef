"""PostgreSQL against the chain: every minted NFT is held by its card owner's custody address.

The reconciliation itself is the platform's one reconciler
(``api/nfts/reconcile.py``, run by ``ece chain reconcile``); the caller passes a
function running it, and this module turns its summary into a row. A transfer
still in flight after a sale (inside the reconciler's grace period) is not a
disagreement yet; a ``mismatch`` or a ``missing`` mint is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from quality.consistency.model import Row, Unreachable, figure, first, verdict


class ChainSummary(Protocol):
    """What :class:`api.nfts.reconcile.ReconcileSummary` offers (read only)."""

    @property
    def checked(self) -> int: ...

    @property
    def ok(self) -> int: ...

    @property
    def mismatch(self) -> int: ...

    @property
    def missing(self) -> int: ...

    @property
    def in_flight(self) -> int: ...

    @property
    def disagreements(self) -> Sequence[Any]: ...


def row(summary: ChainSummary) -> Row:
    bad = [d for d in summary.disagreements if d.status in ("mismatch", "missing")]
    found = (f"{figure(summary.ok)} ok, {figure(summary.mismatch)} mismatch, "
             f"{figure(summary.missing)} missing")
    if summary.in_flight:
        found += f", {figure(summary.in_flight)} transfers in flight"
    listed = [f"{d.mint_address} ({d.status}: expected {d.expected_owner or '-'}, "
              f"on chain {d.onchain_owner or '-'})" for d in bad]
    return Row("chain", "minted NFT owners",
               f"{figure(summary.checked)} NFTs held by their card owner's custody address",
               found, verdict(summary.mismatch == 0 and summary.missing == 0),
               first(listed, 3) if listed else "")


def compare(reconcile: Callable[[], ChainSummary]) -> list[Row]:
    """Run the reconciliation; a chain (or database) that does not answer is named."""
    try:
        summary = reconcile()
    except Unreachable:
        raise
    except Exception as exc:  # the RPC or the database: say which and why, not a traceback
        raise Unreachable("chain", f"{type(exc).__name__}: {exc}") from None
    return [row(summary)]
