"""Every notification kind, end to end over the real stack.

REST write -> Postgres -> Debezium -> Kafka -> Flink (market_activity, notifications)
-> the delivery worker -> the stored list, the user's WebSocket and the push service.
Nothing here inserts a notification: each one is caused by what a user does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from ops.stack.supervisor import Platform
from tests.support.apitest import Account, register_and_login, relogin, unique

pytestmark = pytest.mark.e2e

PIPELINE_S = 60.0  # generous on 2 busy cores; the latency itself is measured in bench/


@pytest.fixture(scope="module")
def stack(platform: Platform) -> Platform:
    platform.require("api", "cdc", "flink", "delivery", "workers", "chain-workers")
    return platform


@pytest.fixture
async def http(stack: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.part("api").url, timeout=30) as client:
        yield client


class Inbox:
    """One user's socket, read in the background: every message it got, in order."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            self.messages.append(json.loads(raw))

    def notifications(self) -> list[dict[str, Any]]:
        return [m["data"] for m in self.messages if m["type"] == "notification"]

    def kinds(self) -> list[str]:
        return [n["kind"] for n in self.notifications()]

    async def wait_kind(self, kind: str, count: int = 1,
                        timeout: float = PIPELINE_S) -> list[dict[str, Any]]:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [n for n in self.notifications() if n["kind"] == kind]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.1)
        raise AssertionError(f"no {count}x {kind} on the socket within {timeout}s; "
                             f"got {self.kinds()}")


@asynccontextmanager
async def inbox(api_url: str, account: Account, after_seq: int = 0,
                channels: str = "notifications") -> AsyncIterator[Inbox]:
    url = (api_url.replace("http://", "ws://", 1)
           + f"/ws?token={account.access}&after_seq={after_seq}&channels={channels}")
    async with connect(url, open_timeout=15) as ws:
        box = Inbox(ws)
        try:
            yield box
        finally:
            box.task.cancel()


async def card(http: httpx.AsyncClient, admin: Account, owner: Account, set_name: str,
               name: str = "Blue-Eyes") -> str:
    r = await http.post("/cards", headers=admin.auth, json={
        "name": name, "set_name": set_name, "number": unique("n")[:10], "rarity": "epic",
        "owner_id": owner.id})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def fund(http: httpx.AsyncClient, admin: Account, user: Account, cents: int) -> None:
    r = await http.post("/admin/deposits", headers=admin.auth, json={
        "user_id": user.id, "amount_cents": cents, "reference": unique("dep")})
    assert r.status_code == 201, r.text


def stored_seqs(rows: list[dict[str, Any]]) -> list[int]:
    return sorted(n["seq"] for n in rows)


async def all_stored(http: httpx.AsyncClient, account: Account) -> list[dict[str, Any]]:
    r = await http.get("/notifications", params={"after_seq": 0, "limit": 200},
                       headers=account.auth)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_every_kind_reaches_socket_list_and_push(
        stack: Platform, http: httpx.AsyncClient, admin: Account, push_service: Any) -> None:
    api = stack.part("api").url
    admin = await relogin(http, admin)  # the session's token may have expired
    set_name = unique("Set ")
    seller, buyer, watcher = [await register_and_login(http) for _ in range(3)]
    await fund(http, admin, buyer, 100_000)
    await fund(http, admin, watcher, 100_000)

    # The watcher's browser subscribes to Web Push with our VAPID key.
    key = (await http.get("/push/vapid-public-key")).json()["public_key"]
    subscription = push_service.subscribe(key)
    client_hash = subscription.pop("clientHash")
    r = await http.post("/me/push-subscriptions", headers=watcher.auth,
                        json={"endpoint": subscription["endpoint"], "keys": subscription["keys"]})
    assert r.status_code == 201, r.text

    async with inbox(api, seller) as s_box, inbox(api, buyer) as b_box, \
            inbox(api, watcher) as w_box:
        sold, traded, wanted, auctioned = [await card(http, admin, seller, set_name)
                                           for _ in range(4)]
        await s_box.wait_kind("card_received", 4)  # issued to the seller

        # Watchlist and price alert, then a listing that matches both.
        assert (await http.post("/me/watchlist", headers=watcher.auth,
                                json={"card_id": sold})).status_code == 201
        assert (await http.post("/me/watchlist", headers=watcher.auth,
                                json={"card_id": auctioned})).status_code == 201
        r = await http.post("/me/alerts", headers=watcher.auth,
                            json={"max_price_cents": 5_000, "set_name": set_name})
        assert r.status_code == 201, r.text
        await asyncio.sleep(2)  # the pipeline has the watch and alert before the listing
        listing = (await http.post("/listings", headers=seller.auth,
                                   json={"card_id": sold, "price_cents": 4_000})).json()
        listed = await w_box.wait_kind("watched_card_listed")
        alerted = await w_box.wait_kind("price_alert")
        assert listed[0]["payload"]["listing_id"] == listing["id"]
        assert alerted[0]["payload"]["price_cents"] == 4_000
        assert "watched_card_listed" not in s_box.kinds()  # never the seller

        # The buyer buys: the seller sold, the buyer received.
        r = await http.post(f"/listings/{listing['id']}/purchase", headers=buyer.auth)
        assert r.status_code == 201, r.text
        assert (await s_box.wait_kind("listing_sold"))[0]["payload"]["price_cents"] == 4_000
        received = await b_box.wait_kind("card_received")
        assert received[0]["payload"]["card_id"] == sold

        # Trades: one accepted, one rejected.
        offer = (await http.post("/trade-offers", headers=buyer.auth, json={
            "to_user_id": seller.id, "offered_card_ids": [sold],
            "requested_card_ids": [traded]})).json()
        await s_box.wait_kind("trade_offer_received")
        assert (await http.post(f"/trade-offers/{offer['id']}/accept",
                                headers=seller.auth)).status_code == 200
        accepted = await b_box.wait_kind("trade_offer_accepted")
        assert accepted[0]["payload"]["offer_id"] == offer["id"]
        rejected = (await http.post("/trade-offers", headers=buyer.auth, json={
            "to_user_id": seller.id, "requested_card_ids": [wanted]})).json()
        await s_box.wait_kind("trade_offer_received", 2)
        assert (await http.post(f"/trade-offers/{rejected['id']}/reject",
                                headers=seller.auth)).status_code == 200
        await b_box.wait_kind("trade_offer_rejected")

        # An auction ending within 5 minutes: watchers hear it is ending soon at once;
        # the first bidder is outbid; the winner wins, the seller hears the result.
        auction = (await http.post("/auctions", headers=seller.auth, json={
            "card_id": auctioned, "start_price_cents": 1_000,
            "duration_seconds": 60})).json()
        await w_box.wait_kind("watched_card_listed", 2)
        soon = await w_box.wait_kind("auction_ending_soon")
        assert soon[0]["payload"]["auction_id"] == auction["id"]
        assert (await http.post(f"/auctions/{auction['id']}/bids", headers=buyer.auth,
                                json={"amount_cents": 1_000})).status_code == 201
        assert (await http.post(f"/auctions/{auction['id']}/bids", headers=watcher.auth,
                                json={"amount_cents": 1_500})).status_code == 201
        outbid = await b_box.wait_kind("outbid")
        assert outbid[0]["payload"]["auction_id"] == auction["id"]
        won = await w_box.wait_kind("auction_won", timeout=PIPELINE_S + 90)
        assert won[0]["payload"]["price_cents"] == 1_500
        ended = await s_box.wait_kind("auction_ended")
        assert ended[0]["payload"]["result"] == "sold"

        # An NFT mint notifies the owner once the chain says minted.
        r = await http.post(f"/cards/{wanted}/nft", headers=seller.auth)
        assert r.status_code == 202, r.text
        minted = await s_box.wait_kind("nft_minted", timeout=PIPELINE_S + 60)
        assert minted[0]["payload"]["nft_id"] == r.json()["id"]

        await asyncio.sleep(3)  # anything duplicated would have arrived by now
        boxes = {"seller": (seller, s_box), "buyer": (buyer, b_box),
                 "watcher": (watcher, w_box)}
        for who, (account, box) in boxes.items():
            on_socket = box.notifications()
            stored = await all_stored(http, account)
            # the socket and the stored list agree: same ids, seq 1..n, no gap, no duplicate
            assert [n["id"] for n in on_socket] == [n["id"] for n in stored], who
            assert stored_seqs(stored) == list(range(1, len(stored) + 1)), who

    # Every kind of the contract was produced by its rule.
    kinds = set(s_box.kinds()) | set(b_box.kinds()) | set(w_box.kinds())
    from api.notifications.models import NOTIFICATION_KINDS

    assert kinds == set(NOTIFICATION_KINDS)

    # Web Push: the watcher's browser got each of its notifications, decrypted.
    async def pushed() -> list[dict[str, Any]]:
        return [json.loads(m) for m in push_service.messages(client_hash)]

    expected = {n["id"] for n in w_box.notifications()}
    for _ in range(60):
        payloads = await pushed()
        if {p["id"] for p in payloads} == expected:
            break
        await asyncio.sleep(0.5)
    assert {p["id"] for p in payloads} == expected
    assert len(payloads) == len(expected)  # pushed once each
    assert all({"id", "seq", "kind", "title"} <= p.keys() for p in payloads)
