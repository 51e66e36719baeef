"""The ledger's problem codes (the ones only money raises)."""

from api.core.problems import Problem, conflict

DEPOSIT_REFERENCE_INDEX = "uq_ledger_transactions_deposit_reference"


def reference_used(reference: str) -> Problem:
    """409 ``conflict``: money is credited once per deposit reference (contract)."""
    return conflict(f"deposit reference {reference!r} was already credited")
