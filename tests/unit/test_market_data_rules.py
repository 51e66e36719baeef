"""market_data's per-card rules (streaming/jobs/market_state.py), without a cluster.

The commands are applied to a small in-memory model of the Redis structures, so
the tests read figures the way the API does (floor = lowest listing, ...).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from ece.contracts import market_data as md
from ece.contracts.change_event import MalformedEvent
from ece.settings import Settings
from streaming.jobs.market_data import (
    apply_input,
    bump_generation,
    classify,
    parse_input,
    pipeline_name,
    read_generation,
)
from streaming.jobs.market_events import parse_cdc
from streaming.jobs.market_state import CardMarket

ACT = "ece.market.activity"


class Model:
    """Sorted sets, sets, hashes and strings, enough to interpret the commands."""

    def __init__(self) -> None:
        self.z: dict[str, dict[str, float]] = defaultdict(dict)
        self.s: dict[str, set[str]] = defaultdict(set)
        self.h: dict[str, dict[str, str]] = defaultdict(dict)
        self.str: dict[str, str] = {}
        self.states: dict[str, CardMarket] = defaultdict(CardMarket)

    def feed(self, raw: str) -> None:
        parsed = parse_input(raw, ACT, "ece")
        if parsed is None:
            return
        card_id, _, item = parsed
        for cmd in apply_input(self.states[card_id], item):
            verb, key = cmd[0], cmd[1]
            if verb == "zadd":
                self.z[key][cmd[3]] = cmd[2]
            elif verb == "zrem":
                self.z[key].pop(cmd[2], None)
            elif verb == "sadd":
                self.s[key].add(cmd[2])
            elif verb == "srem":
                self.s[key].discard(cmd[2])
            elif verb == "hset":
                self.h[key].update(cmd[2])
            elif verb == "hdel":
                self.h[key].pop(cmd[2], None)
            elif verb == "updated":
                self.str[key] = max(self.str.get(key, ""), cmd[2])
            elif verb == "traders":
                total = sum(md.member_price(m) for m in self.z[md.trader_sales_key(key)])
                self.z[md.leaderboard_key("traders")][key] = total
            elif verb == "collectors":
                values = self.h[md.portfolio_key(key)].values()
                board = self.z[md.leaderboard_key("collectors")]
                if values:  # as COLLECTORS_LUA: an empty portfolio leaves the board
                    board[key] = sum(int(v) for v in values)
                else:
                    board.pop(key, None)

    def floor(self, scope: str) -> float | None:
        listings = self.z[md.listings_key(scope)]
        return min(listings.values()) if listings else None

    def snapshot(self) -> Any:
        return json.dumps([self.z, {k: sorted(v) for k, v in self.s.items()}, self.h],
                          sort_keys=True, default=str)


def act(kind: str, eid: str, card: str = "c1", **extra: Any) -> str:
    event = {"event_id": eid, "type": kind, "card_id": card, "user_id": "seller",
             "counterparty_id": None, "price_cents": None, "reference_id": None,
             "set_name": "Base", "rarity": "holo", "at": f"2026-12-01T11:00:{len(eid):02d}.000Z"}
    event.update(extra)
    return json.dumps(event)


def cdc(table: str, after: dict[str, Any] | None, op: str = "u",
        before: dict[str, Any] | None = None) -> str:
    return json.dumps({"before": before, "after": after, "op": op, "ts_ms": 5,
                       "source": {"table": table, "ts_ms": 7, "lsn": 1, "txId": 1,
                                  "schema": "public", "db": "ece"}})


SCENARIO = [
    act("listing_created", "l1c", reference_id="l1", price_cents=500),
    act("listing_created", "l2c", reference_id="l2", price_cents=800),
    act("listing_created", "l3c", reference_id="l3", price_cents=650),
    act("sale", "sale1", reference_id="l1", price_cents=500, user_id="buyer",
        counterparty_id="seller", at="2026-12-01T11:01:00.000Z"),
    act("listing_cancelled", "l3x", reference_id="l3"),
    act("auction_started", "a1s", reference_id="a1", price_cents=100),
    act("bid", "a1b1", reference_id="a1", price_cents=150, user_id="u1"),
    act("bid", "a1b2", reference_id="a1", price_cents=200, user_id="u2"),
    act("bid", "a1b3", reference_id="a1", price_cents=250, user_id="u1"),
    cdc("auctions", {"id": "a1", "card_id": "c1", "ends_at": "2026-12-01T12:00:00Z",
                     "status": "active", "updated_at": "2026-12-01T11:02:00Z"}),
    cdc("cards", {"id": "c1", "owner_id": "buyer", "set_name": "Base", "rarity": "holo",
                  "version": 3}),
    cdc("card_valuations", {"id": "v1", "card_id": "c1", "value_cents": 900,
                            "at": "2026-12-01T10:00:00Z", "source": "x"}, op="c"),
    cdc("card_valuations", {"id": "v0", "card_id": "c1", "value_cents": 1,
                            "at": "2026-12-01T09:00:00Z", "source": "x"}, op="r"),
]


def test_scenario_figures() -> None:
    m = Model()
    for raw in SCENARIO:
        m.feed(raw)
    card = md.card_scope("c1")
    assert m.floor(card) == 800  # l1 sold, l3 cancelled: falls back to l2
    for scope in md.market_scopes("Base", "holo"):
        assert m.floor(scope) == 800 and m.s[md.auctions_key(scope)] == {"a1"}
        assert list(m.z[md.sales_key(scope)]) == [md.sale_member("sale1", 500)]
    assert m.h[md.last_sale_key("c1")]["price_cents"] == "500"
    assert m.h[md.auction_key("a1")] == {"card_id": "c1", "current_bid_cents": "250",
                                         "bidder_count": "2", "ends_at": "2026-12-01T12:00:00Z",
                                         "status": "active"}
    assert m.z[md.leaderboard_key("traders")] == {"buyer": 500, "seller": 500}
    assert m.h[md.portfolio_key("buyer")] == {"c1": "900"}  # the newest valuation, not v0
    assert m.z[md.leaderboard_key("collectors")] == {"buyer": 900}


def test_replay_changes_nothing_and_ownership_moves() -> None:
    m = Model()
    for raw in SCENARIO:
        m.feed(raw)
    before = m.snapshot()
    for raw in SCENARIO:  # a full replay, e.g. at-least-once after a crash
        m.feed(raw)
    assert m.snapshot() == before
    m.feed(cdc("cards", {"id": "c1", "owner_id": "other", "set_name": "Base",
                         "rarity": "holo", "version": 4}))
    m.feed(cdc("cards", {"id": "c1", "owner_id": "buyer", "set_name": "Base",
                         "rarity": "holo", "version": 3}))  # an old row replayed
    assert m.h[md.portfolio_key("buyer")] == {} and m.h[md.portfolio_key("other")] == {"c1": "900"}
    assert m.z[md.leaderboard_key("collectors")] == {"other": 900}


def test_last_sale_only_moves_forward_and_auction_end_is_order_independent() -> None:
    m = Model()
    m.feed(act("sale", "new", reference_id="x", price_cents=9, user_id="b",
               counterparty_id="s", at="2026-12-01T11:05:00.000Z"))
    m.feed(act("sale", "old", reference_id="y", price_cents=7, user_id="b",
               counterparty_id="s", at="2026-12-01T11:04:00.000Z"))
    assert m.h[md.last_sale_key("c1")]["event_id"] == "new"
    assert m.z[md.leaderboard_key("traders")]["b"] == 16
    ended = [act("auction_started", "s", reference_id="a9"),
             act("auction_ended", "e", reference_id="a9", price_cents=40),
             cdc("auctions", {"id": "a9", "card_id": "c1", "ends_at": "2026-12-01T12:00:00Z",
                              "status": "ended", "updated_at": "2026-12-01T12:00:00Z"})]
    one, two = Model(), Model()
    for raw in ended:
        one.feed(raw)
    for raw in reversed(ended):
        two.feed(raw)
    assert one.snapshot() == two.snapshot()
    assert one.h[md.auction_key("a9")]["status"] == "ended"
    assert one.s[md.auctions_key("all")] == set()


def test_classify_and_malformed_inputs() -> None:
    assert classify(SCENARIO[-1], ACT, "ece") == ("ece.public.card_valuations", "card_valuations")
    assert classify("{oops", ACT, "ece") == (ACT, None)
    assert parse_cdc("cards", None) is None
    for raw in ["{oops", act("bid", "b", reference_id="a"),  # a bid without a price
                cdc("cards", {"id": "c1", "owner_id": "u", "version": None}),
                cdc("card_valuations", {"id": "v", "card_id": "c", "value_cents": "1",
                                        "at": "2026-12-01T10:00:00Z"}),
                cdc("auctions", {"id": "a", "card_id": "c", "ends_at": "soon",
                                 "status": "active", "updated_at": "2026-12-01T10:00:00Z"})]:
        with pytest.raises(MalformedEvent):
            parse_input(raw, ACT, "ece")


def test_rebuild_generation_renames_the_consumer_group(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert read_generation(settings) == 0 and pipeline_name(0) == "market_data"
    assert bump_generation(settings) == 1 and bump_generation(settings) == 2
    assert read_generation(settings) == 2 and pipeline_name(2) == "market_data_g2"


def test_rebuild_cache_command_has_help() -> None:
    from typer.testing import CliRunner

    from ops.cli import app

    result = CliRunner().invoke(app, ["rebuild-cache", "--help"])
    assert result.exit_code == 0, result.output
    assert "ece:md:*" in result.output and "--no-wait" in result.output


def _scoped_figures(m: Model, set_name: str, rarity: str) -> dict[str, Any]:
    """What /market/stats would answer in every scope of the card, besides updated_at."""
    return {scope: (sorted(m.z[md.sales_key(scope)]), m.floor(scope),
                    sorted(m.z[md.listings_key(scope)]), sorted(m.s[md.auctions_key(scope)]))
            for scope in [md.card_scope("c1"), *md.market_scopes(set_name, rarity)]}


def test_events_without_their_cards_set_count_there_once_its_row_arrives() -> None:
    """market_activity gives up waiting for a card after CARD_WAIT_MS (e.g. a restarted
    job re-reading its topics) and sends its events with no set or rarity; the card's
    row, arriving later, must still put them in the set and rarity scopes (as
    PostgreSQL counts them), exactly as if the row had come first."""
    card_row = cdc("cards", {"id": "c1", "owner_id": "buyer", "set_name": "Base",
                             "rarity": "holo", "version": 3})
    unnamed = [json.dumps({**json.loads(raw), "set_name": None, "rarity": None})
               if json.loads(raw).get("type") else raw for raw in SCENARIO if raw != card_row]
    row_first, row_last = Model(), Model()
    for raw in [card_row, *unnamed]:
        row_first.feed(raw)
    for raw in [*unnamed, card_row]:
        row_last.feed(raw)
    expected = _scoped_figures(row_first, "Base", "holo")
    assert expected["rarity:holo"][0] == [md.sale_member("sale1", 500)]
    assert expected["set:Base"][1] == 800 and expected["set:Base"][3] == ["a1"]
    assert _scoped_figures(row_last, "Base", "holo") == expected
    before = row_last.snapshot()
    for raw in [*unnamed, card_row]:  # a replay moves nothing twice
        row_last.feed(raw)
    assert row_last.snapshot() == before


def test_an_edited_rarity_moves_the_cards_figures() -> None:
    m = Model()
    for raw in SCENARIO:
        m.feed(raw)
    m.feed(cdc("cards", {"id": "c1", "owner_id": "buyer", "set_name": "Base",
                         "rarity": "rare", "version": 4}))
    moved = _scoped_figures(m, "Base", "rare")
    assert moved["rarity:rare"][0] == [md.sale_member("sale1", 500)]
    assert moved["set:Base|rarity:rare"][3] == ["a1"] and moved["rarity:rare"][1] == 800
    old = [md.sales_key("rarity:holo"), md.listings_key("rarity:holo"),
           md.sales_key("set:Base|rarity:holo")]
    assert all(not m.z[key] for key in old) and not m.s[md.auctions_key("rarity:holo")]
    assert moved["all"] == _scoped_figures(m, "Base", "holo")["all"]


def test_ready_needs_every_input_live_not_just_one() -> None:
    """A rebuild reads four topics side by side: the cards topic reaching the present
    must not declare the hot set ready while the activity topic is still replaying."""
    from streaming.jobs.market_data import STARTUP_MS, caught_up

    opened, now = 0, STARTUP_MS + 60_000
    replaying = {"CardRow": (now, 50), "Activity": (now, 3_600_000)}
    assert not caught_up(now, opened, replaying)
    assert caught_up(now, opened, {**replaying, "Activity": (now, 200)})
    # a quiet input (no valuations for an hour) counts as live once it paused IDLE_MS
    quiet = {"Activity": (now, 100), "ValuationRow": (now - 6_000, 3_600_000)}
    assert caught_up(now, opened, quiet)
    assert not caught_up(now, opened, {**quiet, "ValuationRow": (now - 1_000, 3_600_000)})
    assert not caught_up(1_000, opened, {})  # nothing read yet, still starting
    assert caught_up(STARTUP_MS + 5_000, opened, {})


def test_ready_outlives_a_few_ticks_but_not_a_stopped_writer() -> None:
    """READY's TTL (in ``ece.contracts``) and the writer's tick (in ``streaming``) live in
    layers that may not import each other: this keeps the pair in step. A TTL of fewer
    than four ticks flickers READY off under a slow tick; one far longer keeps vouching
    for a writer that was killed (docs/realtime.md promises 10 s)."""
    from streaming.jobs.market_data import TICK_MS

    assert md.READY_TTL_S * 1000 >= 4 * TICK_MS
    assert md.READY_TTL_S <= 10
