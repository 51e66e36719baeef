"""Per-card market state and the Redis writes it implies (pure; no pyflink, no Redis).

``market_data`` keys every input by card, keeps one :class:`CardMarket` per card in
Flink state and turns each input into a list of absolute, idempotent commands for
the hot set (:mod:`ece.contracts.market_data`): ``ZADD``/``ZREM`` of event or
listing ids, ``HSET`` of whole states, and "recompute" markers for the two
leaderboards that the writer evaluates from Redis after applying a batch. State
decides what is forward-only (last sale, card owner by row version, valuation by
``at`` then id, an auction's end and status), so a replayed or reordered input
never moves a figure back, and the same inputs in the same per-card order always
yield the same hot set.

A command is a JSON-able list: ``["zadd", key, score, member]``, ``["zrem", key,
member]``, ``["sadd", key, member]``, ``["srem", key, member]``, ``["hset", key,
{field: value}]``, ``["hdel", key, field]``, ``["updated", key, iso]`` (set if
later), ``["traders", user_id]``, ``["collectors", user_id]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ece.contracts import market_data as md
from streaming.jobs.market_events import Activity, AuctionRow, CardRow, ValuationRow

Command = list[Any]


@dataclass
class Auction:
    """Merged from the activity (start, bids, end) and the auctions CDC (end time, final
    status): each field has one rule that does not depend on which stream came first."""

    ended: bool = False  # an auction_ended event was seen
    row_status: str | None = None  # status of the newest auctions row seen
    row_version: int = -1  # that row's updated_at (ms)
    current_bid_cents: int | None = None  # bids only rise: the highest seen
    bidders: set[str] = field(default_factory=set)
    ends_at: str | None = None
    scopes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.row_status not in (None, "active"):
            return str(self.row_status)
        return "ended" if self.ended else "active"


@dataclass
class CardMarket:
    """What one card's next inputs need to know about its past ones."""

    version: int = -1  # cards.version last applied
    owner_id: str | None = None
    valuation: tuple[int, str, int] | None = None  # (at_ms, valuation id, value_cents)
    last_sale: tuple[int, str] | None = None  # (at_ms, event id)
    closed_listings: set[str] = field(default_factory=set)
    auctions: dict[str, Auction] = field(default_factory=dict)
    # The card's set and rarity: from its newest cards row, else from the first event
    # that names them. Plain defaults (not factories), so a state pickled before these
    # fields existed still reads: the class attributes stand in.
    set_name: str | None = None
    rarity: str | None = None
    sales: dict[str, int] | None = None  # member -> at_ms, the last day's sales
    listings: dict[str, int] | None = None  # listing id -> price, the open listings

    def value_cents(self) -> int:
        return self.valuation[2] if self.valuation is not None else 0

    def scopes(self, card_id: str) -> list[str]:
        return [md.card_scope(card_id), *md.market_scopes(self.set_name, self.rarity)]


def scopes_of(state: CardMarket, event: Activity) -> list[str]:
    """Where ``event`` counts: the card's scopes as the state knows them.

    An event may carry no set or rarity (``market_activity`` gave up waiting for the
    card's row, e.g. while a restarted job re-read its topics) or older ones than the
    card's newest row: the state's answer wins, and :func:`on_card_row` moves what was
    counted under the wrong scopes once the row arrives.
    """
    return state.scopes(event.card_id)


def _updated(scopes: list[str], iso: str) -> list[Command]:
    return [["updated", md.updated_key(scope), iso] for scope in scopes]


def on_activity(state: CardMarket, event: Activity) -> list[Command]:
    handler = _HANDLERS.get(event.type)
    if handler is None:
        return []
    out: list[Command] = []
    named = event.set_name is not None or event.rarity is not None
    if named and state.version < 0 and state.set_name is None and state.rarity is None:
        # no cards row yet: the first event that names the set and rarity stands in
        out = _rescope(state, event.card_id, event.set_name, event.rarity)
    return out + handler(state, event)


def _sale(state: CardMarket, event: Activity) -> list[Command]:
    assert event.price_cents is not None and event.reference_id is not None
    scopes = scopes_of(state, event)
    member = md.sale_member(event.event_id, event.price_cents)
    out: list[Command] = []
    for scope in scopes:
        out.append(["zadd", md.sales_key(scope), event.at_ms, member])
        out.append(["zrem", md.listings_key(scope), event.reference_id])  # the floor falls back
    state.closed_listings.add(event.reference_id)
    _remember_sale(state, member, event.at_ms)
    (state.listings or {}).pop(event.reference_id, None)
    moment = (event.at_ms, event.event_id)
    if state.last_sale is None or moment > state.last_sale:
        state.last_sale = moment
        out.append(["hset", md.last_sale_key(event.card_id), {
            "price_cents": str(event.price_cents), "at": event.at,
            "at_ms": str(event.at_ms), "event_id": event.event_id}])
    for user in dict.fromkeys(u for u in (event.user_id, event.counterparty_id) if u):
        out.append(["zadd", md.trader_sales_key(user), event.at_ms, member])
        out.append(["traders", user])
    return out + _updated(scopes, event.at)


def _listing_created(state: CardMarket, event: Activity) -> list[Command]:
    if event.reference_id in state.closed_listings:
        return []  # a replayed creation of a listing that has since sold or was cancelled
    assert event.reference_id is not None and event.price_cents is not None
    scopes = scopes_of(state, event)
    if state.listings is None:
        state.listings = {}
    state.listings[event.reference_id] = event.price_cents
    out: list[Command] = [["zadd", md.listings_key(s), event.price_cents, event.reference_id]
                          for s in scopes]
    return out + _updated(scopes, event.at)


def _listing_cancelled(state: CardMarket, event: Activity) -> list[Command]:
    assert event.reference_id is not None
    state.closed_listings.add(event.reference_id)
    (state.listings or {}).pop(event.reference_id, None)
    scopes = scopes_of(state, event)
    out: list[Command] = [["zrem", md.listings_key(s), event.reference_id] for s in scopes]
    return out + _updated(scopes, event.at)


def _auction_event(state: CardMarket, event: Activity) -> list[Command]:
    assert event.reference_id is not None
    auction = state.auctions.setdefault(event.reference_id, Auction())
    auction.scopes = scopes_of(state, event)
    if event.type == "auction_ended":
        auction.ended = True
    if event.price_cents is not None and event.type != "auction_started":
        auction.current_bid_cents = max(auction.current_bid_cents or 0, event.price_cents)
    if event.type == "bid":
        assert event.user_id is not None
        auction.bidders.add(event.user_id)
    return _auction_commands(event.card_id, event.reference_id, auction) \
        + _updated(auction.scopes, event.at)


def on_auction_row(state: CardMarket, row: AuctionRow) -> list[Command]:
    """An auctions CDC row: its end time (anti-sniping moves it) and final status."""
    auction = state.auctions.setdefault(row.auction_id, Auction())
    if row.updated_ms >= auction.row_version:
        auction.row_version = row.updated_ms
        auction.ends_at = row.ends_at
        auction.row_status = row.status
    if not auction.scopes:
        return [["hset", md.auction_key(row.auction_id), _auction_fields(row.card_id, auction)]]
    return _auction_commands(row.card_id, row.auction_id, auction)


def _auction_fields(card_id: str, auction: Auction) -> dict[str, str]:
    bid = auction.current_bid_cents
    return {"card_id": card_id, "current_bid_cents": "" if bid is None else str(bid),
            "bidder_count": str(len(auction.bidders)), "ends_at": auction.ends_at or "",
            "status": auction.status}


def _auction_commands(card_id: str, auction_id: str, auction: Auction) -> list[Command]:
    verb = "sadd" if auction.status == "active" else "srem"
    out: list[Command] = [[verb, md.auctions_key(scope), auction_id] for scope in auction.scopes]
    out.append(["hset", md.auction_key(auction_id), _auction_fields(card_id, auction)])
    return out


def on_card_row(state: CardMarket, row: CardRow) -> list[Command]:
    """A cards CDC row: move the card between portfolios when its owner changes."""
    if row.version <= state.version:
        return []  # a replay or a re-snapshot of an older row
    state.version = row.version
    previous, state.owner_id = state.owner_id, row.owner_id
    out = (_rescope(state, row.card_id, row.set_name, row.rarity)
           if row.owner_id is not None else [])
    if previous is not None and previous != row.owner_id:
        out += [["hdel", md.portfolio_key(previous), row.card_id], ["collectors", previous]]
    if row.owner_id is not None and previous != row.owner_id:
        out += [["hset", md.portfolio_key(row.owner_id), {row.card_id: str(state.value_cents())}],
                ["collectors", row.owner_id]]
    return out


def _remember_sale(state: CardMarket, member: str, at_ms: int) -> None:
    """Keep the last day's sales (by their own time), the ones a new scope must count.
    In place: the dict is copied only when a sale older than a day can be dropped."""
    if state.sales is None:
        state.sales = {}
    state.sales[member] = at_ms
    cutoff = at_ms - md.DAY_MS
    if any(at < cutoff for at in state.sales.values()):
        newest = max(state.sales.values())
        state.sales = {m: at for m, at in state.sales.items() if at >= newest - md.DAY_MS}


def _rescope(state: CardMarket, card_id: str, set_name: str | None,
             rarity: str | None) -> list[Command]:
    """The card's set or rarity is new (first known, an edit): move its figures.

    The last day's sales, the open listings and the auctions leave the scopes they no
    longer belong to and join the new ones, as PostgreSQL counts them (by the card's
    current set and rarity). Absolute commands: a replay moves nothing twice.
    """
    old = state.scopes(card_id)
    state.set_name, state.rarity = set_name, rarity
    new = state.scopes(card_id)
    gone, added = [s for s in old if s not in new], [s for s in new if s not in old]
    if not gone and not added:
        return []
    out: list[Command] = []
    for member, at_ms in (state.sales or {}).items():
        out += [["zrem", md.sales_key(s), member] for s in gone]
        out += [["zadd", md.sales_key(s), at_ms, member] for s in added]
    for listing_id, price in (state.listings or {}).items():
        out += [["zrem", md.listings_key(s), listing_id] for s in gone]
        out += [["zadd", md.listings_key(s), price, listing_id] for s in added]
    for auction_id, auction in state.auctions.items():
        if auction.scopes:
            out += [["srem", md.auctions_key(s), auction_id] for s in gone]
            auction.scopes = new
            out += _auction_commands(card_id, auction_id, auction)
    return out


def on_valuation_row(state: CardMarket, row: ValuationRow) -> list[Command]:
    """A card_valuations row: the newest by ``at`` then id is the card's value."""
    candidate = (row.at_ms, row.valuation_id, row.value_cents)
    if state.valuation is not None and candidate[:2] <= state.valuation[:2]:
        return []
    state.valuation = candidate
    if state.owner_id is None:
        return []
    return [["hset", md.portfolio_key(state.owner_id), {row.card_id: str(row.value_cents)}],
            ["collectors", state.owner_id]]


_HANDLERS = {
    "sale": _sale,
    "listing_created": _listing_created,
    "listing_cancelled": _listing_cancelled,
    "auction_started": _auction_event,
    "bid": _auction_event,
    "auction_ended": _auction_event,
}
