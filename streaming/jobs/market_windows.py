"""One card's one-minute sale windows: event-time bookkeeping for ``market_stats``.

Pure Python (no pyflink), so ``tests/unit`` checks every rule; the Flink function
only keeps a :class:`CardWindows` per card in keyed state and calls it.

Rules (all on event time, ``at`` = commit time, except the emission deadline):

* Windows are ``[start, start + 60 s)`` with ``start = at - at % 60 s``.
* The card's watermark is its newest ``at`` minus ``BOUND_MS`` (bounded
  out-of-orderness). A window closes when the watermark passes its end.
* An event is *too late* when it is more than ``LATENESS_MS`` behind the watermark:
  it changes nothing and goes to the DLQ (reason ``late``). Anything else is
  counted, and a window that was already emitted is emitted again with the
  corrected figures (same card and ``window_start``: consumers upsert).
* Each event id counts once per window, so a replayed event changes nothing.
* Emission deadline: a window is emitted ``GRACE_MS`` (processing time) after its
  end even if the watermark never gets there, i.e. when the market is quiet.
  This is the only wall-clock rule, and it only decides *when* a window is sent,
  never its figures or whether an event is late: a replay gives the same figures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ece.contracts.realtime import iso_millis

WINDOW_MS = 60_000
BOUND_MS = 5_000  # out-of-orderness tolerated before a window closes on event time
LATENESS_MS = 10 * 60_000  # later than this behind the watermark -> DLQ, reason late
GRACE_MS = 10_000  # processing-time deadline after a window's end (contract: <= 60 s)
COALESCE_MS = 200  # a burst of changes to one window is emitted once

ACCEPTED, DUPLICATE, LATE = "accepted", "duplicate", "late"


@dataclass
class Window:
    events: dict[str, tuple[int, int]] = field(default_factory=dict)  # event id -> (at, price)
    sent: tuple[int, int, int, int, int] | None = None  # the figures last emitted
    due: int | None = None  # processing time at which to (re-)emit


@dataclass
class CardWindows:
    """The open (and recently closed, still correctable) windows of one card."""

    newest_at: int | None = None
    windows: dict[int, Window] = field(default_factory=dict)

    @property
    def watermark(self) -> int | None:
        return None if self.newest_at is None else self.newest_at - BOUND_MS

    def add(self, event_id: str, at_ms: int, price_cents: int, now_ms: int) -> str:
        """Count one sale; ``LATE`` and ``DUPLICATE`` leave everything unchanged."""
        mark = self.watermark
        if mark is not None and at_ms < mark - LATENESS_MS:
            return LATE
        start = at_ms - at_ms % WINDOW_MS
        window = self.windows.setdefault(start, Window())
        if event_id in window.events:
            return DUPLICATE
        window.events[event_id] = (at_ms, price_cents)
        if self.newest_at is None or at_ms > self.newest_at:
            self.newest_at = at_ms
        mark = self.watermark
        assert mark is not None
        soon = now_ms + COALESCE_MS
        for begin, other in self.windows.items():
            end = begin + WINDOW_MS
            if other is window:
                closed = window.sent is not None or end <= mark  # a correction, or closed
                target = soon if closed else max(end + GRACE_MS, soon)
            elif other.sent is None and end <= mark:  # the watermark just passed it
                target = soon
            else:
                continue
            other.due = target if other.due is None else min(other.due, target)
        return ACCEPTED

    def next_due(self) -> int | None:
        dues = [w.due for w in self.windows.values() if w.due is not None]
        return min(dues) if dues else None

    def emit_due(self, now_ms: int) -> list[dict[str, object]]:
        """Windows due by ``now_ms`` whose figures changed; then forget windows that
        can no longer change (their end is more than the lateness behind the watermark)."""
        out: list[dict[str, object]] = []
        for start in sorted(self.windows):
            window = self.windows[start]
            if window.due is None or window.due > now_ms:
                continue
            window.due = None
            figures = _figures(window)
            if figures != window.sent:
                window.sent = figures
                out.append(_value(start, figures))
        mark = self.watermark
        if mark is not None:
            for start in [s for s, w in self.windows.items()
                          if w.due is None and s + WINDOW_MS <= mark - LATENESS_MS]:
                del self.windows[start]
        return out


def _figures(window: Window) -> tuple[int, int, int, int, int]:
    """(sales, volume, last, min, max); last = the newest by (at, event id)."""
    prices = [price for _, price in window.events.values()]
    last_id = max(window.events, key=lambda eid: (window.events[eid][0], eid))
    return (len(prices), sum(prices), window.events[last_id][1], min(prices), max(prices))


def _value(start: int, figures: tuple[int, int, int, int, int]) -> dict[str, object]:
    sales, volume, last, low, high = figures
    return {"window_start": iso_millis(start), "window_end": iso_millis(start + WINDOW_MS),
            "sales": sales, "volume_cents": volume, "last_price_cents": last,
            "min_price_cents": low, "max_price_cents": high}


def stats_value(card_id: str, window: dict[str, object]) -> str:
    """The ``ece.market.stats`` record value (JSON), key ``card_id``."""
    return json.dumps({"card_id": card_id, **window}, separators=(",", ":"))
