"""PostgreSQL against the Redis market-data hot set: prices, market stats, leaderboards.

Both sides are given, not rebuilt here: the hot side is what the API serves from
Redis, the PostgreSQL side the API's own database fallback
(``api/marketdata/fallback.py``), which defines what the figures must be. This
module only decides what to compare and how to judge it, so the quality floor
does not reach up into the API; the caller (``ece check``, the Dagster asset)
passes the two :class:`MarketSource` objects.

The stream updates the hot set a few milliseconds after a commit, and the 24-hour
windows roll while we read, so disagreeing figures are read again, both sides,
until they agree or ``settle_s`` has passed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from quality.consistency.model import Row, Unreachable, figure, first, verdict

SETTLE_S = 5.0
PRICE_FIGURES = ("last_sale_cents", "sales_24h", "volume_24h_cents", "floor_listing_cents")
STATS_FIGURES = ("sales_24h", "volume_24h_cents", "active_listings", "active_auctions",
                 "floor_listing_cents")
LEADERBOARD_KINDS = ("traders", "collectors")
LEADERBOARD_LIMIT = 100
Scope = tuple[str | None, str | None]  # (set_name, rarity); (None, None) is the whole market


class MarketSource(Protocol):
    """One side's figures; the hot side answers ``None`` when the hot set is not ready."""

    async def price(self, card_id: str) -> dict[str, Any] | None: ...

    async def stats(self, set_name: str | None, rarity: str | None) -> dict[str, Any] | None: ...

    async def leaderboard(self, kind: str, limit: int) -> list[tuple[str, int]] | None: ...


def _plain(figures: dict[str, Any] | None, names: tuple[str, ...]) -> dict[str, int | None]:
    if figures is None:
        return {}
    return {n: None if figures.get(n) is None else int(figures[n]) for n in names}


async def _differing(items: list[Any], read: Callable[[Any], Awaitable[tuple[Any, Any]]],
                     settle_s: float) -> dict[Any, tuple[Any, Any]]:
    """item -> (PostgreSQL's, the hot set's) for the items still differing after settling."""
    async def round_of(batch: list[Any]) -> dict[Any, tuple[Any, Any]]:
        out = {}
        for item in batch:
            expected, found = await read(item)
            if expected != found:
                out[item] = (expected, found)
        return out

    differing = await round_of(items)
    deadline = time.monotonic() + settle_s
    while differing and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        differing = await round_of(list(differing))
    return differing


def _not_ready() -> Unreachable:
    return Unreachable("redis", "the market-data hot set is not ready (the stream job's "
                                "writer is not running or is rebuilding)")


async def compare(hot: MarketSource, db: MarketSource, cards: list[str], scopes: list[Scope],
                  settle_s: float = SETTLE_S) -> list[Row]:
    """Every card's price, every scope's stats and both leaderboards, as rows."""
    async def price(card_id: str) -> tuple[Any, Any]:
        found = await hot.price(card_id)
        if found is None:
            raise _not_ready()
        return _plain(await db.price(card_id), PRICE_FIGURES), _plain(found, PRICE_FIGURES)

    async def stats(scope: Scope) -> tuple[Any, Any]:
        found = await hot.stats(*scope)
        if found is None:
            raise _not_ready()
        return _plain(await db.stats(*scope), STATS_FIGURES), _plain(found, STATS_FIGURES)

    async def board(kind: str) -> tuple[Any, Any]:
        found = await hot.leaderboard(kind, LEADERBOARD_LIMIT)
        if found is None:
            raise _not_ready()
        expected = await db.leaderboard(kind, LEADERBOARD_LIMIT) or []
        return ([(str(u), int(s)) for u, s in expected], [(str(u), int(s)) for u, s in found])

    rows = []
    bad = await _differing(cards, price, settle_s)
    rows.append(Row("redis", "card prices",
                    f"{figure(len(cards))} cards' price figures as PostgreSQL has them",
                    f"{figure(len(cards) - len(bad))} equal, {figure(len(bad))} differ",
                    verdict(not bad), _describe(bad)))
    bad_scopes = await _differing(scopes, stats, settle_s)
    names = [_scope_name(s) for s in scopes]
    rows.append(Row("redis", "market stats",
                    f"{figure(len(scopes))} scopes ({first(names, 3)})",
                    f"{figure(len(scopes) - len(bad_scopes))} equal, "
                    f"{figure(len(bad_scopes))} differ", verdict(not bad_scopes),
                    _describe({_scope_name(k): v for k, v in bad_scopes.items()})))
    for kind in LEADERBOARD_KINDS:
        expected, found = await board(kind)
        if expected != found:
            bad_board = await _differing([kind], board, settle_s)
            if kind in bad_board:
                expected, found = bad_board[kind]
        rows.append(Row("redis", f"leaderboard {kind}", _board(expected), _board(found),
                        verdict(expected == found), _board_diff(expected, found)))
    return rows


def _scope_name(scope: Scope) -> str:
    set_name, rarity = scope
    if set_name is None and rarity is None:
        return "all"
    return "|".join(p for p in (set_name and f"set:{set_name}",
                                rarity and f"rarity:{rarity}") if p)


def _describe(bad: dict[Any, tuple[Any, Any]]) -> str:
    parts = []
    for item, (expected, found) in sorted(bad.items(), key=lambda kv: str(kv[0])):
        fields = [f"{k} {v} vs {found.get(k)}" for k, v in expected.items()
                  if found.get(k) != v]
        parts.append(f"{item} ({'; '.join(fields)})")
    return first(parts, 3)


def _board(entries: list[tuple[str, int]]) -> str:
    return f"{figure(len(entries))} ranked, total score {figure(sum(s for _, s in entries))}"


def _board_diff(expected: list[tuple[str, int]], found: list[tuple[str, int]]) -> str:
    if expected == found:
        return ""
    want, got = dict(expected), dict(found)
    parts = [f"{u} {want.get(u)} vs {got.get(u)}" for u in sorted(set(want) | set(got))
             if want.get(u) != got.get(u)]
    return "scores differ: " + first(parts, 3) if parts else "same scores, different order"
