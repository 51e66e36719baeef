"""The Redis hot set of market data: one layout shared by its writer and its readers.

The writer is the Flink ``market_data`` pipeline (from ``ece.market.activity`` and
the CDC of cards and valuations); the readers are the API (``/cards/{id}/price``,
``/market/stats``, ``/leaderboards/{kind}``, ``/users/{id}/portfolio``) and
``ece rebuild-cache``. Every structure is written so that a replayed event changes
nothing: members are event or listing ids (``ZADD`` of the same member is a
no-op), values are absolute (``HSET`` of the latest state, never ``HINCRBY``), and
"last sale" moves only forward in commit time. Rolling 24-hour figures are read
from per-sale members scored by commit time, so they roll without a job.

A scope is where market figures are kept: ``card:<id>``, ``set:<name>``,
``rarity:<r>``, ``set:<name>|rarity:<r>`` and ``all``.
"""

from __future__ import annotations

PREFIX = "ece:md:"
DAY_MS = 24 * 60 * 60 * 1000

# Set (with a TTL refreshed every few seconds) while the writer is running and has
# caught up since it (re)started; without it the API answers from Postgres, never from
# a hot set that may be half built (after a wipe, before a rebuild) or behind (while a
# restarted writer catches up: it deletes the key when it opens). The TTL is five of
# the writer's 2 s ticks: a writer that stops or dies stops vouching within 10 s.
READY_KEY = f"{PREFIX}ready"
READY_TTL_S = 10

# Who built the hot set: ``<rebuild generation>:<broker epoch>`` of the writer that
# claimed it. A writer that starts a new generation or epoch (re-reading its topics
# from the beginning) wipes every ``ece:md:*`` key and claims it; one that resumes
# refreshes READY_KEY only while its claim is still there (a wiped or replaced
# Redis loses it, and the hot set stays "not ready" until ``ece rebuild-cache``).
GENERATION_KEY = f"{PREFIX}generation"

LEADERBOARD_KINDS = ("traders", "collectors")


def card_scope(card_id: str) -> str:
    return f"card:{card_id}"


def market_scopes(set_name: str | None, rarity: str | None) -> list[str]:
    """Every scope a card of this set and rarity counts in (the card's own excluded)."""
    scopes = ["all"]
    if set_name is not None:
        scopes.append(f"set:{set_name}")
    if rarity is not None:
        scopes.append(f"rarity:{rarity}")
    if set_name is not None and rarity is not None:
        scopes.append(f"set:{set_name}|rarity:{rarity}")
    return scopes


def query_scope(set_name: str | None, rarity: str | None) -> str:
    """The one scope that answers ``GET /market/stats?set_name=&rarity=``."""
    if set_name is not None and rarity is not None:
        return f"set:{set_name}|rarity:{rarity}"
    if set_name is not None:
        return f"set:{set_name}"
    if rarity is not None:
        return f"rarity:{rarity}"
    return "all"


def sales_key(scope: str) -> str:
    """ZSET: member ``<event_id>:<price_cents>``, score = commit time (ms)."""
    return f"{PREFIX}{scope}:sales"


def listings_key(scope: str) -> str:
    """ZSET of active listings: member listing id, score = price (floor = lowest)."""
    return f"{PREFIX}{scope}:listings"


def auctions_key(scope: str) -> str:
    """SET of active auction ids in the scope."""
    return f"{PREFIX}{scope}:auctions"


def last_sale_key(card_id: str) -> str:
    """HASH ``price_cents``, ``at`` (ISO), ``at_ms``, ``event_id``: moves only forward."""
    return f"{PREFIX}card:{card_id}:last_sale"


def updated_key(scope: str) -> str:
    """STRING: ISO time of the last change in the scope (``updated_at`` of the answers)."""
    return f"{PREFIX}{scope}:updated_at"


def auction_key(auction_id: str) -> str:
    """HASH ``card_id``, ``current_bid_cents``, ``bidder_count``, ``ends_at``, ``status``."""
    return f"{PREFIX}auction:{auction_id}"


def trader_sales_key(user_id: str) -> str:
    """ZSET of one user's buys and sales: member ``<event_id>:<price_cents>``, score = ms."""
    return f"{PREFIX}trader:{user_id}:sales"


def portfolio_key(user_id: str) -> str:
    """HASH card id -> value cents (latest valuation) of the cards the user owns."""
    return f"{PREFIX}portfolio:{user_id}"


def leaderboard_key(kind: str) -> str:
    """ZSET user id -> score: ``traders`` (24 h volume bought + sold), ``collectors``."""
    return f"{PREFIX}lb:{kind}"


def sale_member(event_id: str, price_cents: int) -> str:
    return f"{event_id}:{price_cents}"


def member_price(member: str | bytes) -> int:
    """The price encoded in a sales member (``<event_id>:<price_cents>``)."""
    text = member.decode() if isinstance(member, bytes) else member
    return int(text.rsplit(":", 1)[1])
