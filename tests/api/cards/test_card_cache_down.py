"""Card reads while Redis is unreachable: answered from the database, and each read
asks the dead cache once (one timeout, one warning), not once per layer."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from api.cards import fast_read
from api.core.cache import CardCache, get_card_cache
from ops.stack.base import free_port
from tests.support.apitest import Account, create_card


class CountedRedis(Redis):
    """A real client on a closed port that counts the reads it was asked for."""

    reads = 0

    async def get(self, name: Any) -> Any:
        CountedRedis.reads += 1
        return await super().get(name)


async def test_a_card_read_with_redis_down_asks_it_once_and_answers_from_the_database(
    app: FastAPI, client: httpx.AsyncClient, admin: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = await create_card(client, admin)
    dead = CountedRedis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    cache = CardCache(dead, 60)
    monkeypatch.setattr(fast_read, "get_card_cache", lambda: cache)
    app.dependency_overrides[get_card_cache] = lambda: cache
    try:
        for _ in range(2):
            r = await client.get(f"/cards/{card['id']}")
            assert r.status_code == 200 and r.json() == card
        assert CountedRedis.reads == 2
    finally:
        app.dependency_overrides.pop(get_card_cache)
        await dead.aclose()
