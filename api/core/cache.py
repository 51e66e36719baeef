"""Redis client and the card read-through cache (layout and CAS rule from
``ece.contracts.card_cache``, shared with the Flink cache job).

Redis is an accelerator, not a source of truth: a read that cannot reach Redis
falls back to the database. A write that cannot reach Redis after a commit tries
to delete the cached document instead, so the old version is not served.
"""

from functools import lru_cache
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.core.metrics import CACHE_WRITES, cache_hit, cache_miss
from ece.contracts import card_cache
from ece.settings import get_settings

log = structlog.get_logger(__name__)


@lru_cache
def get_redis() -> Redis:
    return Redis.from_url(get_settings().redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)


async def close_redis() -> None:
    if get_redis.cache_info().currsize:
        await get_redis().aclose()
    get_redis.cache_clear()
    get_card_cache.cache_clear()


# ``ece.contracts.card_cache.encode_entry`` writes ``{"version":N,"card":{...}}``
# (compact separators, these two keys in this order); both writers use it.
_ENTRY_HEAD = b'{"version":'
_CARD_KEY = b',"card":'


def split_entry(raw: bytes) -> tuple[bytes, int]:
    """The card document's JSON bytes and the version of a cached entry.

    A cache hit answers with these bytes as they are (issue 14, P1: no parse and
    re-render of the stored JSON): the layout of ``encode_entry`` is read by position.
    Anything else (another layout) is parsed and the document rendered again.
    """
    comma = raw.find(_CARD_KEY, len(_ENTRY_HEAD))
    if (raw.startswith(_ENTRY_HEAD) and comma > len(_ENTRY_HEAD)
            and raw[len(_ENTRY_HEAD):comma].isdigit()
            and raw[comma + len(_CARD_KEY):comma + len(_CARD_KEY) + 1] == b"{"
            and raw.endswith(b"}}")):
        return raw[comma + len(_CARD_KEY):-1], int(raw[len(_ENTRY_HEAD):comma])
    document, version = card_cache.decode_entry(raw)
    return orjson.dumps(document), version


class CardCache:
    """The ``ece:card:<id>`` documents guarded by their version floor."""

    def __init__(self, redis: Redis, ttl_seconds: int) -> None:
        self.redis = redis
        self.ttl = ttl_seconds
        self._set_if_newer = redis.register_script(card_cache.SET_IF_NEWER_LUA)

    async def _entry(self, card_id: str) -> bytes | None:
        """The raw cached entry (None on a miss or when Redis is unreachable)."""
        try:
            raw: bytes | None = await self.redis.get(card_cache.document_key(card_id))
        except RedisError as exc:
            log.warning("card_cache_get_failed", card_id=card_id, error=str(exc))
            raw = None
        if raw is None:
            cache_miss("card")
            return None
        cache_hit("card")
        return raw

    async def get(self, card_id: str) -> tuple[dict[str, Any], int] | None:
        raw = await self._entry(card_id)
        return None if raw is None else card_cache.decode_entry(raw)

    async def get_json(self, card_id: str) -> tuple[bytes, int] | None:
        """The cached document as JSON bytes (:func:`split_entry`) and its version."""
        raw = await self._entry(card_id)
        return None if raw is None else split_entry(raw)

    async def put(self, document: dict[str, Any], version: int) -> bool:
        """Write if not older than what was ever cached; True when written."""
        keys, args = card_cache.set_if_newer_args(document, version, self.ttl)
        try:
            written = bool(await self._set_if_newer(keys=keys, args=args))
        except RedisError as exc:
            CACHE_WRITES.labels("card", "error").inc()
            log.warning("card_cache_put_failed", card_id=document["id"], error=str(exc))
            return False
        CACHE_WRITES.labels("card", "written" if written else "refused").inc()
        return written

    async def put_after_commit(self, document: dict[str, Any], version: int) -> None:
        """After a committed change: the new version must win, or the entry must go."""
        if await self.put(document, version):
            return
        try:
            cached = await self.redis.get(card_cache.document_key(str(document["id"])))
            if cached is not None and card_cache.decode_entry(cached)[1] < version:
                await self.redis.delete(card_cache.document_key(str(document["id"])))
        except RedisError as exc:
            log.error("card_cache_invalidate_failed", card_id=document["id"], error=str(exc))


@lru_cache
def get_card_cache() -> CardCache:
    """One per Redis client: building it registers the CAS script, which is no work
    to repeat on every request."""
    return CardCache(get_redis(), get_settings().card_cache_ttl_seconds)
