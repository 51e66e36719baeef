"""Racing bids over real HTTP (uvicorn, real Postgres): the money held always equals
the leading bids, no deadlock, no lost or double hold; one Idempotency-Key bids once."""

import asyncio
import random
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.apitest import Account, Db, register_and_login
from tests.support.auctiontest import balances, create_auction
from tests.support.markettest import fund, new_card

BIDDERS = 6
BIDS_EACH = 8


@pytest.fixture
async def live(live_url: str) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=live_url, limits=limits, timeout=30) as c:
        yield c


class HeldMonitor:
    """Samples, in one statement (one snapshot), the money held by the bidders and the
    leading bids of the auctions, from a thread, while the race runs."""

    def __init__(self, db: Db, bidder_ids: list[str], auction_ids: list[str]) -> None:
        self.db, self.bidders, self.auctions = db, bidder_ids, auction_ids
        self.samples = 0
        self.mismatches: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            held, leading = self.db.rows(
                "SELECT (SELECT coalesce(sum(balance_cents), 0) FROM ledger_accounts "
                "        WHERE kind = 'user_held' AND user_id = ANY(%s::uuid[])),"
                "       (SELECT coalesce(sum(current_bid_cents), 0) FROM auctions "
                "        WHERE id = ANY(%s::uuid[]))",
                self.bidders, self.auctions,
            )[0]
            self.samples += 1
            if held != leading:
                self.mismatches.append((held, leading))

    def __enter__(self) -> "HeldMonitor":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


async def test_racing_bids_hold_exactly_the_leading_bids(
    client: httpx.AsyncClient, live: httpx.AsyncClient, admin: Account, db: Db
) -> None:
    seller = await register_and_login(client)
    bidders = list(await asyncio.gather(*(register_and_login(client) for _ in range(BIDDERS))))
    for bidder in bidders:
        await fund(client, admin, bidder.id, 10_000_000)
    auctions = [
        (await create_auction(client, seller, await new_card(client, admin, seller.id),
                              start_price_cents=1000, min_increment_cents=100))["id"]
        for _ in range(2)
    ]
    statuses: Counter[tuple[int, str]] = Counter()
    created: Counter[str] = Counter()
    rng = random.Random(7)

    async def bidder_loop(bidder: Account) -> None:
        for _ in range(BIDS_EACH):
            aid = rng.choice(auctions)
            state = (await live.get(f"/auctions/{aid}")).json()
            floor = state["current_bid_cents"] or state["start_price_cents"] - 100
            amount = floor + 100 + rng.randrange(0, 300)
            r = await live.post(f"/auctions/{aid}/bids", headers=bidder.auth,
                                json={"amount_cents": amount})
            code = r.json().get("code", "") if r.status_code != 201 else ""
            statuses[(r.status_code, code)] += 1
            if r.status_code == 201:
                created[aid] += 1

    with HeldMonitor(db, [b.id for b in bidders], auctions) as monitor:
        await asyncio.gather(*(bidder_loop(b) for b in bidders))
    assert set(statuses) <= {(201, ""), (409, "bid_too_low")}, statuses
    assert statuses[(201, "")] >= len(auctions)
    assert monitor.samples > 10 and monitor.mismatches == []

    leaders: Counter[str] = Counter()
    for aid in auctions:
        state = (await live.get(f"/auctions/{aid}")).json()
        assert state["bid_count"] == created[aid]
        amounts = db.rows(
            "SELECT amount_cents FROM bids WHERE auction_id = %s ORDER BY created_at, id", aid
        )
        assert len(amounts) == created[aid]
        ordered = [a[0] for a in amounts]
        assert all(b >= a + 100 for a, b in zip(ordered, ordered[1:], strict=False))
        assert ordered[-1] == state["current_bid_cents"]
        leaders[state["current_bidder_id"]] += state["current_bid_cents"]
        holds = db.value(
            "SELECT count(*) FROM ledger_transactions WHERE reference_id = %s "
            "AND kind = 'bid_hold'", aid,
        )
        releases = db.value(
            "SELECT count(*) FROM ledger_transactions WHERE reference_id = %s "
            "AND kind = 'bid_release'", aid,
        )
        assert (holds, releases) == (created[aid], created[aid] - 1)
    for bidder in bidders:
        available, held = balances(db, bidder.id)
        assert held == leaders.get(bidder.id, 0)
        assert available + held == 10_000_000


async def test_one_idempotency_key_bids_once_under_concurrent_retries(
    client: httpx.AsyncClient, live: httpx.AsyncClient, admin: Account, db: Db
) -> None:
    seller, bidder = await register_and_login(client), await register_and_login(client)
    await fund(client, admin, bidder.id, 100_000)
    aid = (await create_auction(client, seller, await new_card(client, admin, seller.id)))["id"]
    headers = {**bidder.auth, "Idempotency-Key": str(uuid.uuid4())}

    async def attempt() -> httpx.Response:
        return await live.post(f"/auctions/{aid}/bids", headers=headers,
                               json={"amount_cents": 5000})

    answers = await asyncio.gather(*(attempt() for _ in range(6)))
    ok = [r for r in answers if r.status_code == 201]
    assert ok, [r.text for r in answers]
    assert all(r.json() == ok[0].json() for r in ok)
    others: list[Any] = [r.json()["code"] for r in answers if r.status_code != 201]
    assert set(others) <= {"conflict"}, others
    assert db.value("SELECT count(*) FROM bids WHERE auction_id = %s", aid) == 1
    assert balances(db, bidder.id) == (95_000, 5_000)
