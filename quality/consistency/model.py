"""What a consistency comparison reports: one row per comparison, and the whole report.

Every comparison ends in one of three verdicts. ``agree`` and ``disagree`` are the
stores' answer; ``unreachable`` means the comparison could not be made (a store
did not answer). Only ``agree`` is healthy: a check that could not look is not a
check that passed, so ``ece check`` exits 1 on either of the other two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

AGREE, DISAGREE, UNREACHABLE = "agree", "disagree", "unreachable"


class Unreachable(RuntimeError):
    """A store that did not answer; ``store`` names it for the report."""

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(f"{store} unreachable: {reason}")
        self.store = store
        self.reason = reason


@dataclass(frozen=True)
class Row:
    """One comparison: what was compared, what the source of truth says, what was found."""

    store: str  # the store compared with PostgreSQL: lake, cdc, redis, chain
    what: str
    expected: str
    found: str
    verdict: str
    detail: str = ""  # the first disagreeing keys, or why it could not be compared

    @property
    def ok(self) -> bool:
        return self.verdict == AGREE


@dataclass(frozen=True)
class Comparison:
    """A named group of rows; ``run`` may raise :class:`Unreachable` (or anything)."""

    name: str
    store: str
    run: Callable[[], list[Row]]


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if not r.ok]

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "seconds": round(self.seconds, 3),
                "timings": {k: round(v, 3) for k, v in self.timings.items()},
                "failures": [f"{r.store}: {r.what}" for r in self.failures],
                "comparisons": [asdict(r) for r in self.rows]}


def verdict(agree: bool) -> str:
    return AGREE if agree else DISAGREE


def figure(n: int | None) -> str:
    """A count or amount as people read it (``1,234``); ``-`` for nothing."""
    return "-" if n is None else f"{n:,}"


def first(keys: list[str], limit: int = 5) -> str:
    """The first few disagreeing keys, with how many more there are."""
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")
