"""kill -9 of the Flink job and of the delivery worker while sales stream in.

After both come back, every sale's ``listing_sold`` is stored exactly once, the
seller's seqs run 1..n without a gap, and a socket that resumes with ``after_seq``
gets exactly the rest: nothing lost, nothing twice. The market data the same job
keeps in Redis (prices, set stats, the traders board, portfolios) resumes from the
checkpoint too and equals a recomputation from Postgres: no sale counted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from ops.stack.supervisor import Platform
from tests.support import marketcheck
from tests.support.apitest import Account, register_and_login, relogin, unique

pytestmark = pytest.mark.e2e

SALES = 24
PIPELINE_S = 120.0


def _kill_group(part: Any) -> None:
    """SIGKILL a part's whole process group (the Flink job's JVM is in it), no goodbye."""
    process = part.process
    assert process is not None and process.proc is not None, f"{part.name} not running"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.proc.pid, signal.SIGKILL)
    process.proc.wait(15)


async def _stored(http: httpx.AsyncClient, account: Account) -> list[dict[str, Any]]:
    r = await http.get("/notifications", params={"after_seq": 0, "limit": 200},
                       headers=account.auth)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_kill_9_mid_stream_loses_nothing_and_repeats_nothing(
        platform: Platform, admin: Account) -> None:
    platform.require("api", "cdc", "flink", "delivery")
    api = platform.part("api").url
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        admin = await relogin(http, admin)  # the session's token may have expired
        seller, buyer = await register_and_login(http), await register_and_login(http)
        r = await http.post("/admin/deposits", headers=admin.auth, json={
            "user_id": buyer.id, "amount_cents": SALES * 1_000, "reference": unique("dep")})
        assert r.status_code == 201, r.text
        listings, cards = [], []
        set_name = unique("Faults ")
        for i in range(SALES):
            r = await http.post("/cards", headers=admin.auth, json={
                "name": f"Crash Card {i}", "set_name": set_name, "number": unique("n")[:10],
                "rarity": "common", "owner_id": seller.id})
            assert r.status_code == 201, r.text
            cards.append(r.json()["id"])
            r = await http.post("/listings", headers=seller.auth,
                                json={"card_id": r.json()["id"], "price_cents": 500})
            assert r.status_code == 201, r.text
            listings.append(r.json()["id"])

        async def buy(listing_id: str) -> None:
            r = await http.post(f"/listings/{listing_id}/purchase", headers=buyer.auth)
            assert r.status_code == 201, r.text

        # A third of the sales, then the job and the worker die mid-stream, more sales
        # commit while they are down, then they come back.
        third = SALES // 3
        for listing_id in listings[:third]:
            await buy(listing_id)
        _kill_group(platform.part("flink"))
        _kill_group(platform.part("delivery"))
        for listing_id in listings[third:2 * third]:
            await buy(listing_id)
        platform.part("flink").stop()  # reaps the dead group, clears the MiniCluster's temp
        platform.part("flink").start()  # restores from the last checkpoint
        platform.part("delivery").start()
        for listing_id in listings[2 * third:]:
            await buy(listing_id)

        deadline = time.monotonic() + PIPELINE_S
        while True:
            stored = await _stored(http, seller)
            sold = [n for n in stored if n["kind"] == "listing_sold"]
            if len(sold) >= SALES or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(3)  # a duplicate would have been stored by now
        stored = await _stored(http, seller)
        sold = [n for n in stored if n["kind"] == "listing_sold"]
        assert sorted(n["payload"]["listing_id"] for n in sold) == sorted(listings)
        assert len({n["id"] for n in stored}) == len(stored)
        assert [n["seq"] for n in stored] == list(range(1, len(stored) + 1))
        received = [n for n in await _stored(http, buyer) if n["kind"] == "card_received"]
        assert len(received) == SALES

        figures = await marketcheck.converge(http, cards, set_name, [buyer.id, seller.id],
                                             PIPELINE_S)
        assert figures["stats"]["sales_24h"] == SALES
        assert figures["traders"][buyer.id] == SALES * 500
        assert figures["portfolios"][buyer.id]["card_count"] == SALES

    # A socket that had seen half resumes after it: exactly the rest, in order.
    half = len(stored) // 2
    url = api.replace("http://", "ws://", 1) + f"/ws?token={seller.access}&after_seq={half}"
    async with connect(url, open_timeout=15) as ws:
        got: list[int] = []
        while len(got) < len(stored) - half:
            message = json.loads(await asyncio.wait_for(ws.recv(), 15))
            if message["type"] == "notification":
                got.append(message["data"]["seq"])
    assert got == list(range(half + 1, len(stored) + 1))
