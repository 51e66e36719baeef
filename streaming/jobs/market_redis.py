"""Applying ``market_data``'s commands to Redis: one pipeline per batch, all absolute.

The commands come from :mod:`streaming.jobs.market_state`. Leaderboard scores are
never incremented: after a batch, each user it touched is recomputed from Redis
itself (``traders``: the user's sales in the last 24 h; ``collectors``: the sum of
the portfolio hash), by a script, so a replayed batch writes the same scores. A
periodic refresh recomputes every trader so old sales roll off, and prunes sale
members older than a day (readers only count the last 24 h anyway).

Needs only a ``redis.Redis`` client (no pyflink): the bench's baseline consumer
and ``ece rebuild-cache`` use the same functions as the Flink writer.
"""

from __future__ import annotations

import json
from typing import Any

from ece.contracts import market_data as md

PRUNE_SLACK_MS = 60 * 60 * 1000  # keep an hour beyond the day: readers filter anyway

# KEYS[1] the user's sales zset, KEYS[2] lb:traders; ARGV[1] user, ARGV[2] cutoff (ms)
TRADERS_LUA = """
local total = 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], '+inf')) do
  total = total + tonumber(string.match(m, ':(%d+)$'))
end
if total > 0 then redis.call('ZADD', KEYS[2], total, ARGV[1])
else redis.call('ZREM', KEYS[2], ARGV[1]) end
return total
"""

# KEYS[1] the user's portfolio hash, KEYS[2] lb:collectors; ARGV[1] user
COLLECTORS_LUA = """
local values = redis.call('HVALS', KEYS[1])
if #values == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) return 0 end
local total = 0
for _, v in ipairs(values) do total = total + tonumber(v) end
redis.call('ZADD', KEYS[2], total, ARGV[1])
return total
"""

# KEYS[1] an updated_at key; ARGV[1] an ISO time (fixed width: text order = time order)
SET_IF_LATER_LUA = """
local current = redis.call('GET', KEYS[1])
if current and current >= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


class HotSet:
    """The hot set's scripts registered on one client."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.traders = client.register_script(TRADERS_LUA)
        self.collectors = client.register_script(COLLECTORS_LUA)
        self.set_if_later = client.register_script(SET_IF_LATER_LUA)

    def apply(self, batches: list[list[list[Any]]], now_ms: int) -> None:
        """Run every command of ``batches`` (in order) and the recomputes they ask for,
        as one pipeline. Raises on a Redis error (the caller retries the whole batch)."""
        pipe = self.client.pipeline(transaction=False)
        traders: dict[str, None] = {}
        collectors: dict[str, None] = {}
        for commands in batches:
            for command in commands:
                verb = command[0]
                if verb == "zadd":
                    pipe.zadd(command[1], {command[3]: command[2]})
                elif verb == "zrem":
                    pipe.zrem(command[1], command[2])
                elif verb == "sadd":
                    pipe.sadd(command[1], command[2])
                elif verb == "srem":
                    pipe.srem(command[1], command[2])
                elif verb == "hset":
                    pipe.hset(command[1], mapping=command[2])
                elif verb == "hdel":
                    pipe.hdel(command[1], command[2])
                elif verb == "updated":
                    self.set_if_later(keys=[command[1]], args=[command[2]], client=pipe)
                elif verb == "traders":
                    traders[command[1]] = None
                elif verb == "collectors":
                    collectors[command[1]] = None
                else:
                    raise ValueError(f"unknown hot-set command {verb!r}")
        self._recompute(pipe, traders, collectors, now_ms)
        pipe.execute()

    def _recompute(self, pipe: Any, traders: dict[str, None], collectors: dict[str, None],
                   now_ms: int) -> None:
        cutoff = now_ms - md.DAY_MS
        for user in traders:
            self.traders(keys=[md.trader_sales_key(user), md.leaderboard_key("traders")],
                         args=[user, cutoff], client=pipe)
        for user in collectors:
            self.collectors(keys=[md.portfolio_key(user), md.leaderboard_key("collectors")],
                            args=[user], client=pipe)

    def refresh(self, now_ms: int) -> int:
        """Recompute every trader (old sales roll off) and prune day-old sale members."""
        users = [u.decode() if isinstance(u, bytes) else u
                 for u in self.client.zrange(md.leaderboard_key("traders"), 0, -1)]
        pipe = self.client.pipeline(transaction=False)
        self._recompute(pipe, dict.fromkeys(users), {}, now_ms)
        for key in self.client.scan_iter(match=f"{md.PREFIX}*:sales", count=1000):
            pipe.zremrangebyscore(key, "-inf", f"({now_ms - md.DAY_MS - PRUNE_SLACK_MS}")
        pipe.execute()
        return len(users)


def encode(commands: list[list[Any]]) -> str:
    return json.dumps(commands, separators=(",", ":"))


def decode(text: str) -> list[list[Any]]:
    value = json.loads(text)
    assert isinstance(value, list)
    return value


def wipe(client: Any) -> int:
    """Delete every ``ece:md:*`` key; returns how many were deleted."""
    deleted = 0
    batch: list[Any] = []
    for key in client.scan_iter(match=f"{md.PREFIX}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += int(client.unlink(*batch))
            batch = []
    if batch:
        deleted += int(client.unlink(*batch))
    return deleted


# KEYS[1] the generation key, KEYS[2] the READY key; ARGV[1] owner, ARGV[2] "1" if it may
# claim, ARGV[3] key pattern. One script, so two writers opening at once cannot both wipe
# (one would wipe the other's first writes after it claimed): the check, the wipe and the
# claim are one step. A resuming owner withdraws READY in the same step: it is behind by
# whatever was committed while it was down, so its previous run's readiness no longer
# holds (a claiming writer's wipe removes READY with everything else).
CLAIM_LUA = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then redis.call('DEL', KEYS[2]) return 1 end
if ARGV[2] ~= '1' then return 0 end
local cursor = '0'
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', ARGV[3], 'COUNT', 1000)
  cursor = page[1]
  if #page[2] > 0 then redis.call('UNLINK', unpack(page[2])) end
until cursor == '0'
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


def claim(client: Any, owner: str, may_claim: bool) -> bool:
    """Make ``owner`` the hot set's writer; True if the hot set is ours to declare ready.

    A writer that re-reads its topics from the beginning (``may_claim``) takes over:
    whatever another generation or epoch left is wiped first, atomically with the claim.
    A resuming writer owns the hot set only if its claim is still there. Either way an
    owner starts with the hot set not ready; it declares it ready once caught up.
    """
    script = client.register_script(CLAIM_LUA)
    return bool(script(keys=[md.GENERATION_KEY, md.READY_KEY],
                       args=[owner, "1" if may_claim else "0", f"{md.PREFIX}*"]))


def still_owned(client: Any, owner: str) -> bool:
    current = client.get(md.GENERATION_KEY)
    current = current.decode() if isinstance(current, bytes) else current
    return bool(current == owner)
