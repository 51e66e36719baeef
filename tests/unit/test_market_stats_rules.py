"""market_stats' window rules (streaming/jobs/market_windows.py), without a cluster."""

from __future__ import annotations

import json

import pytest

from ece.contracts.change_event import MalformedEvent
from ece.contracts.dlq import dlq_value
from ece.contracts.realtime import iso_millis
from streaming.jobs.market_events import parse_activity
from streaming.jobs.market_windows import (
    ACCEPTED,
    DUPLICATE,
    GRACE_MS,
    LATE,
    WINDOW_MS,
    CardWindows,
    stats_value,
)

T0 = 1_796_122_800_000  # 2026-12-01T11:00:00.000Z, a whole minute


def _drain(windows: CardWindows, now: int) -> list[dict[str, object]]:
    return windows.emit_due(now)


def test_a_quiet_window_is_emitted_by_the_deadline_not_before() -> None:
    w = CardWindows()
    now = T0 + 1_000
    assert w.add("e1", T0 + 500, 1_000, now) == ACCEPTED
    assert w.add("e2", T0 + 900, 3_000, now) == ACCEPTED
    assert w.next_due() == T0 + WINDOW_MS + GRACE_MS
    assert _drain(w, T0 + WINDOW_MS + GRACE_MS - 1) == []  # not yet: stragglers may come
    (value,) = _drain(w, T0 + WINDOW_MS + GRACE_MS)
    assert value == {"window_start": iso_millis(T0), "window_end": iso_millis(T0 + WINDOW_MS),
                     "sales": 2, "volume_cents": 4_000, "last_price_cents": 3_000,
                     "min_price_cents": 1_000, "max_price_cents": 3_000}
    assert w.next_due() is None and _drain(w, T0 + 10 * WINDOW_MS) == []


def test_the_watermark_closes_a_window_early() -> None:
    w = CardWindows()
    w.add("e1", T0 + 100, 500, T0 + 200)
    # 5 s of out-of-orderness: an event at end + 4 s does not close it, end + 5 s does
    w.add("e2", T0 + WINDOW_MS + 4_000, 700, T0 + WINDOW_MS + 4_100)
    assert w.next_due() == T0 + WINDOW_MS + GRACE_MS
    w.add("e3", T0 + WINDOW_MS + 5_000, 700, T0 + WINDOW_MS + 5_100)
    (first,) = _drain(w, T0 + WINDOW_MS + 5_400)
    assert first["window_start"] == iso_millis(T0) and first["sales"] == 1


def test_late_event_re_emits_corrected_window_and_too_late_is_refused() -> None:
    w = CardWindows()
    now = T0 + 20 * WINDOW_MS
    w.add("old", T0 + 1_000, 100, now)  # replay-like: its deadline is long past
    (sent,) = _drain(w, now + 1_000)
    assert sent["sales"] == 1
    w.add("live", T0 + 6 * WINDOW_MS, 900, now)  # the card's watermark moves 6 min on
    _drain(w, now + 2_000)
    assert w.add("straggler", T0 + 2_000, 300, now + 3_000) == ACCEPTED  # ~6 min late
    (again,) = _drain(w, now + 4_000)
    assert again["window_start"] == iso_millis(T0)
    assert (again["sales"], again["volume_cents"], again["last_price_cents"],
            again["min_price_cents"], again["max_price_cents"]) == (2, 400, 300, 100, 300)
    assert w.add("straggler", T0 + 2_000, 300, now + 5_000) == DUPLICATE
    assert _drain(w, now + 60_000) == []  # a replay changes nothing and sends nothing
    w.add("later", T0 + 12 * WINDOW_MS, 1, now)
    assert w.add("too-late", T0 + 12 * WINDOW_MS - 5_000 - 10 * WINDOW_MS - 1, 5, now) == LATE


def test_replay_in_any_wall_clock_gives_the_same_figures() -> None:
    events = [(f"e{i}", T0 + i * 7_919 % (5 * WINDOW_MS), 100 + i) for i in range(60)]

    def run(now0: int, step: int) -> dict[str, dict[str, object]]:
        w, final = CardWindows(), {}
        for i, (eid, at, price) in enumerate(events + events[:10]):
            w.add(eid, at, price, now0 + i * step)
            for value in w.emit_due(now0 + i * step):
                final[str(value["window_start"])] = value
        for value in w.emit_due(now0 + 10**9):
            final[str(value["window_start"])] = value
        return final

    live, replay = run(T0, 5_000), run(T0 + 10**8, 1)
    assert live == replay and sum(int(v["sales"]) for v in live.values()) == 60


def test_stats_value_and_late_dlq_record() -> None:
    value = json.loads(stats_value("c1", {"window_start": iso_millis(T0), "sales": 1}))
    assert value == {"card_id": "c1", "window_start": "2026-12-01T11:00:00.000Z", "sales": 1}
    record = json.loads(dlq_value("ece.market.activity", "market_stats", "{}", "x",
                                  reason="late"))
    assert record["reason"] == "late"
    assert json.loads(dlq_value("t", "p", None, "e"))["reason"] == "malformed"


def _activity(**overrides: object) -> str:
    event = {"event_id": "a" * 32, "type": "sale", "card_id": "c1", "user_id": "b",
             "counterparty_id": "s", "price_cents": 1_500, "reference_id": "l1",
             "set_name": "Base", "rarity": "holo", "at": "2026-12-01T11:00:00.123Z"}
    event.update(overrides)
    return json.dumps(event)


def test_parse_activity() -> None:
    sale = parse_activity(_activity())
    assert sale is not None and sale.at_ms == T0 + 123 and sale.price_cents == 1_500
    assert parse_activity(_activity(type="nft_minted", price_cents=None)) is None
    cancelled = parse_activity(_activity(type="listing_cancelled", user_id=None))
    assert cancelled is not None and cancelled.reference_id == "l1"


@pytest.mark.parametrize("raw", [
    "not json", "[]", _activity(type="sold"), _activity(event_id=""),
    _activity(at="yesterday"), _activity(price_cents="15"), _activity(price_cents=-1),
    _activity(reference_id=None), _activity(card_id=None),
])
def test_parse_activity_rejects_malformed(raw: str) -> None:
    with pytest.raises(MalformedEvent):
        parse_activity(raw)
