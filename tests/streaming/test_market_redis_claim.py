"""The hot set's claim on a real Redis: one writer wipes and claims, atomically.

Two writers of a new generation opening at once (parallelism 2, or a restart racing
the old job) must not both wipe: the second wipe would delete the first writer's
first batches after it claimed, and those figures would never come back.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from ece.contracts import market_data as md
from ops.stack.supervisor import Platform
from streaming.jobs.market_redis import claim, still_owned


@pytest.fixture
def client(platform: Platform) -> Iterator[redis.Redis]:
    platform.require("redis")
    r = redis.Redis.from_url(platform.settings.redis_url, decode_responses=True)
    yield r
    for key in r.scan_iter(match=f"{md.PREFIX}*"):
        r.delete(key)
    r.close()


def test_a_new_writer_wipes_what_another_left_and_a_resuming_one_does_not(
        client: redis.Redis) -> None:
    client.set(md.GENERATION_KEY, "0:old")
    client.set(f"{md.PREFIX}stale", "1")
    assert claim(client, "1:epoch", may_claim=False) is False  # resuming: not ours
    assert client.get(f"{md.PREFIX}stale") == "1"
    assert claim(client, "1:epoch", may_claim=True) is True
    assert client.get(f"{md.PREFIX}stale") is None
    assert still_owned(client, "1:epoch")
    client.set(f"{md.PREFIX}written", "1")
    assert claim(client, "1:epoch", may_claim=True) is True  # already ours: no wipe
    assert client.get(f"{md.PREFIX}written") == "1"


def test_only_the_owner_withdraws_ready_when_it_opens(client: redis.Redis) -> None:
    """A resuming owner is behind by what was committed while it was down: its claim
    withdraws READY (the API answers from PostgreSQL until it is caught up again). A
    writer whose claim is gone must not touch the owner's READY."""
    client.set(md.GENERATION_KEY, "1:epoch")
    client.set(md.READY_KEY, "1", ex=600)
    assert claim(client, "0:other", may_claim=False) is False
    assert client.get(md.READY_KEY) == "1"
    client.set(f"{md.PREFIX}written", "1")
    assert claim(client, "1:epoch", may_claim=False) is True
    assert client.get(md.READY_KEY) is None
    assert client.get(f"{md.PREFIX}written") == "1"  # withdrawn, not wiped


def test_writers_claiming_at_once_wipe_once(client: redis.Redis, platform: Platform) -> None:
    client.set(md.GENERATION_KEY, "0:old")
    for i in range(3000):  # enough keys that a wipe takes a while
        client.set(f"{md.PREFIX}old:{i}", "1")

    def open_writer(n: int) -> bool:
        own = redis.Redis.from_url(platform.settings.redis_url, decode_responses=True)
        try:
            owned = claim(own, "1:epoch", may_claim=True)
            own.set(f"{md.PREFIX}first:{n}", "1")  # the writer's first batch
            return owned
        finally:
            own.close()

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(open_writer, range(8)))
    assert sorted(client.scan_iter(match=f"{md.PREFIX}first:*")) == sorted(
        f"{md.PREFIX}first:{n}" for n in range(8))
    assert not list(client.scan_iter(match=f"{md.PREFIX}old:*"))
