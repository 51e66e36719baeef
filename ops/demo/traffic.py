"""The demo's traffic: simulated users set up, then weighted actions until the deadline.

Each action (``act_<name>``) reads what a client would see and does what a user
would do with it; ``ACTIONS`` weights them and names the routes each needs.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from ops.demo.client import Actor, ApiClient, SetupFailed
from ops.demo.invariants import check_invariants
from ops.demo.memory import MemorySampler
from ops.demo.report import DemoReport

PROGRESS_EVERY_S = 5.0

# Routes each action needs; absent ones disable the action with one warning line.
ACTIONS: dict[str, tuple[float, tuple[str, ...]]] = {
    "browse": (3.0, ("GET /cards",)),
    "list": (3.0, ("POST /listings", "GET /cards")),
    "purchase": (3.0, ("GET /listings", "POST /listings/{}/purchase")),
    "delist": (0.5, ("GET /listings", "DELETE /listings/{}")),
    "auction": (1.5, ("POST /auctions", "GET /cards")),
    "bid": (3.0, ("GET /auctions", "POST /auctions/{}/bids")),
    "offer": (2.0, ("POST /trade-offers", "GET /cards")),
    "respond": (
        2.0,
        ("GET /trade-offers", "POST /trade-offers/{}/accept", "POST /trade-offers/{}/reject"),
    ),
    "cancel-offer": (0.3, ("GET /trade-offers", "POST /trade-offers/{}/cancel")),
    "top-up": (0.5, ("POST /admin/deposits",)),
    "mint": (0.3, ("POST /cards/{}/nft", "GET /cards")),
}


class Demo(ApiClient):
    """One demo run: setup, concurrent traffic until the deadline, then the report."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        rng: random.Random,
        say: Callable[[str], None],
        user_rps: float = 0.0,
        stop: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__(http, user_rps=user_rps)
        self.stop = stop  # ends the traffic before the deadline (``ece chaos``'s load)
        self.rng = rng
        self.say = say
        self.admin = Actor("admin", "10.77.0.1")
        self.users: list[Actor] = []
        self.enabled: dict[str, float] = {}

    def route_missing(self, kind: str, why: str) -> None:
        """Disable the action whose route is not deployed, with one warning line."""
        if self.enabled.pop(kind, None) is not None:
            self.report.skipped[kind] = why
            self.say(f"warning: skipping {kind}: {why}")

    # --- setup --------------------------------------------------------------------

    async def discover(self) -> None:
        routes = await self.routes()
        for action, (weight, needs) in ACTIONS.items():
            missing = [route for route in needs if route not in routes]
            if missing:
                self.report.skipped[action] = f"{missing[0]} not deployed"
                self.say(f"warning: skipping {action}: {missing[0]} not deployed")
            else:
                self.enabled[action] = weight

    async def setup(self, admin_login: str, admin_password: str, users: int, cards: int) -> None:
        self.deadline = time.monotonic() + 300  # how long a 429 may be waited out in setup
        await self.discover()
        self.admin.name, self.admin.password = admin_login, admin_password
        await self.login(self.admin)
        run = self.report.tag = uuid.uuid4().hex[:6]
        password = f"demo-{uuid.uuid4().hex}"
        self.users = [
            Actor(f"demo{run}u{i}", f"10.77.{1 + i // 250}.{1 + i % 250}", password)
            for i in range(users)
        ]
        gate = asyncio.Semaphore(4)

        async def enrol(actor: Actor) -> None:
            async with gate:
                r = await self.call(
                    actor,
                    "register",
                    "POST",
                    "/auth/register",
                    json={
                        "email": f"{actor.name}@example.com",
                        "username": actor.name,
                        "password": actor.password,
                    },
                )
                if r is None or r.status_code != 201:
                    raise SetupFailed(f"register {actor.name}: {r.text[:200] if r else 'failed'}")
                actor.user_id = r.json()["id"]
                await self.login(actor)
                if "top-up" in self.enabled:
                    await self.deposit(actor, self.rng.randint(500, 3000) * 100)

        await asyncio.gather(*(enrol(a) for a in self.users))
        self.say(f"{users} users registered and funded")
        for i in range(cards):
            owner = self.users[i % len(self.users)]
            await self.call(
                self.admin,
                "issue-card",
                "POST",
                "/cards",
                json={
                    "name": f"{self.rng.choice(('Storm', 'Shadow', 'Ember', 'Frost'))} "
                    f"{self.rng.choice(('Drake', 'Knight', 'Oracle', 'Titan'))}",
                    "set_name": f"Demo {run}",
                    "number": str(i + 1),
                    "rarity": self.rng.choice(
                        ("common", "common", "uncommon", "rare", "epic", "legendary")
                    ),
                    "attributes": {"power": self.rng.randint(1, 99)},
                    "owner_id": owner.user_id,
                },
            )
        self.say(f"{cards} cards issued")

    async def deposit(self, actor: Actor, cents: int) -> None:
        await self.call(
            self.admin,
            "deposit",
            "POST",
            "/admin/deposits",
            idempotent=True,
            json={
                "user_id": actor.user_id,
                "amount_cents": cents,
                "reference": f"demo:{actor.name}:{uuid.uuid4()}",
            },
        )

    # --- actions ------------------------------------------------------------------

    def other(self, actor: Actor) -> Actor:
        return self.rng.choice([u for u in self.users if u is not actor] or [actor])

    async def my_available_card(self, actor: Actor) -> dict[str, Any] | None:
        cards = await self.items(actor, "/cards", owner_id=actor.user_id, status="available")
        return self.rng.choice(cards) if cards else None

    async def act_browse(self, actor: Actor) -> None:
        cards = await self.items(actor, "/cards", limit=20)
        if cards:
            await self.call(actor, "read", "GET", f"/cards/{self.rng.choice(cards)['id']}")
        if "purchase" in self.enabled:
            await self.items(actor, "/listings", sort=self.rng.choice(("price", "-created")))

    async def act_list(self, actor: Actor) -> None:
        card = await self.my_available_card(actor)
        if card is not None:
            price = self.rng.randint(5, 400) * 100 + self.rng.choice((0, 50, 99))
            await self.call(
                actor,
                "list",
                "POST",
                "/listings",
                json={"card_id": card["id"], "price_cents": price},
            )

    def short_of_funds(self, r: httpx.Response | None) -> bool:
        """Refused for money, and an admin can top the buyer up (as a real one would)."""
        return (
            r is not None
            and r.status_code == 409
            and r.json().get("code") == "insufficient_funds"
            and "top-up" in self.enabled
        )

    async def act_purchase(self, actor: Actor) -> None:
        listings = [
            x
            for x in await self.items(actor, "/listings", sort="-created")
            if x["seller_id"] != actor.user_id
        ]
        if not listings:
            return
        listing = self.rng.choice(listings)
        r = await self.call(
            actor, "purchase", "POST", f"/listings/{listing['id']}/purchase", idempotent=True
        )
        if self.short_of_funds(r):
            await self.deposit(actor, listing["price_cents"] + 10_000)

    async def act_delist(self, actor: Actor) -> None:
        mine = await self.items(actor, "/listings", seller_id=actor.user_id)
        if mine:
            await self.call(actor, "delist", "DELETE", f"/listings/{self.rng.choice(mine)['id']}")

    async def act_auction(self, actor: Actor) -> None:
        card = await self.my_available_card(actor)
        if card is None:
            return
        start = self.rng.randint(5, 200) * 100
        body: dict[str, Any] = {
            "card_id": card["id"],
            "start_price_cents": start,
            "min_increment_cents": self.rng.choice((100, 250, 500)),
            "duration_seconds": self.rng.randint(60, 180),
        }
        if self.rng.random() < 0.3:
            body["reserve_price_cents"] = start * 2
        await self.call(actor, "auction", "POST", "/auctions", json=body)

    async def act_bid(self, actor: Actor) -> None:
        auctions = [
            a
            for a in await self.items(actor, "/auctions", status="active")
            if actor.user_id not in (a["seller_id"], a.get("current_bidder_id"))
        ]
        if not auctions:
            return
        auction = self.rng.choice(auctions)
        current = auction.get("current_bid_cents")
        amount = (
            auction["start_price_cents"]
            if current is None
            else current + auction["min_increment_cents"] * self.rng.randint(1, 3)
        )
        r = await self.call(
            actor,
            "bid",
            "POST",
            f"/auctions/{auction['id']}/bids",
            json={"amount_cents": amount},
            idempotent=True,
        )
        if self.short_of_funds(r):
            await self.deposit(actor, amount + 10_000)

    async def act_offer(self, actor: Actor) -> None:
        other = self.other(actor)
        if other is actor:
            return
        mine = await self.items(actor, "/cards", owner_id=actor.user_id, status="available")
        theirs = await self.items(actor, "/cards", owner_id=other.user_id, status="available")
        offered = [c["id"] for c in self.rng.sample(mine, min(len(mine), self.rng.randint(0, 2)))]
        wanted = min(len(theirs), self.rng.randint(1, 2))
        requested = [c["id"] for c in self.rng.sample(theirs, wanted)]
        if not offered and not requested:
            return
        await self.call(
            actor,
            "offer",
            "POST",
            "/trade-offers",
            json={
                "to_user_id": other.user_id,
                "offered_card_ids": offered,
                "requested_card_ids": requested,
                "message": "demo trade",
            },
        )

    async def act_respond(self, actor: Actor) -> None:
        pending = await self.items(actor, "/trade-offers", role="received", status="pending")
        if pending:
            offer = self.rng.choice(pending)
            verb = "accept" if self.rng.random() < 0.7 else "reject"
            await self.call(
                actor,
                verb,
                "POST",
                f"/trade-offers/{offer['id']}/{verb}",
                idempotent=verb == "accept",
            )

    async def act_cancel_offer(self, actor: Actor) -> None:
        pending = await self.items(actor, "/trade-offers", role="sent", status="pending")
        if pending:
            offer = self.rng.choice(pending)
            await self.call(actor, "cancel-offer", "POST", f"/trade-offers/{offer['id']}/cancel")

    async def act_top_up(self, actor: Actor) -> None:
        await self.deposit(actor, self.rng.randint(10, 500) * 100)

    async def act_mint(self, actor: Actor) -> None:
        card = await self.my_available_card(actor)
        if card is not None:
            await self.call(actor, "mint", "POST", f"/cards/{card['id']}/nft", idempotent=True)

    # --- the run ------------------------------------------------------------------

    def handlers(self) -> dict[str, Callable[[Actor], Awaitable[None]]]:
        return {
            "browse": self.act_browse,
            "list": self.act_list,
            "purchase": self.act_purchase,
            "delist": self.act_delist,
            "auction": self.act_auction,
            "bid": self.act_bid,
            "offer": self.act_offer,
            "respond": self.act_respond,
            "cancel-offer": self.act_cancel_offer,
            "top-up": self.act_top_up,
            "mint": self.act_mint,
        }

    async def worker(self) -> None:
        handlers = self.handlers()
        while time.monotonic() < self.deadline and self.enabled and not self.stop():
            actions, weights = zip(*self.enabled.items(), strict=True)
            action = self.rng.choices(actions, weights)[0]
            await handlers[action](self.rng.choice(self.users))

    async def progress(self, started: float) -> None:
        last = 0
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            now = self.report.requests
            key = {k: self.report.count(k) for k in ("purchase", "bid", "accept", "list")}
            self.say(
                f"[{time.monotonic() - started:5.0f}s] {now} requests "
                f"({(now - last) / PROGRESS_EVERY_S:.0f}/s), {key['purchase']} purchases, "
                f"{key['bid']} bids, {key['accept']} trades, {key['list']} listings, "
                f"{self.report.errors} errors"
            )
            last = now

    async def traffic(self, seconds: float, concurrency: int,
                      memory: MemorySampler | None = None) -> None:
        started = time.monotonic()
        self.deadline = started + seconds
        ticker = asyncio.create_task(self.progress(started))
        middle = None
        if memory is not None:  # start, middle and end: "memory stays flat" over a soak
            memory.sample("start")
            middle = asyncio.create_task(self._sample_later(memory, seconds / 2))
        try:
            await asyncio.gather(*(self.worker() for _ in range(concurrency)))
        finally:
            ticker.cancel()
            if middle is not None:
                middle.cancel()
        if memory is not None:
            memory.sample("end")
            self.report.memory = memory.samples
        self.report.seconds = time.monotonic() - started

    @staticmethod
    async def _sample_later(memory: MemorySampler, delay: float) -> None:
        await asyncio.sleep(delay)
        await asyncio.to_thread(memory.sample, "middle")


async def run_demo(
    *,
    api: str,
    admin_login: str,
    admin_password: str,
    users: int,
    cards: int,
    seconds: float,
    concurrency: int,
    database_url: str,
    user_rps: float = 0.0,
    say: Callable[[str], None],
    seed: int | None = None,
    stop: Callable[[], bool] = lambda: False,
    memory: MemorySampler | None = None,
) -> DemoReport:
    """Set up, drive traffic for ``seconds`` (or until ``stop()``), check the invariants.

    ``memory`` samples the platform's PSS at the start, middle and end of the traffic.
    """
    async with httpx.AsyncClient(base_url=api.rstrip("/"), timeout=30) as http:
        demo = Demo(http, rng=random.Random(seed), say=say, user_rps=user_rps, stop=stop)
        await demo.setup(admin_login, admin_password, users, cards)
        say(
            f"driving traffic for {seconds:.0f}s with {concurrency} concurrent clients: "
            f"{', '.join(demo.enabled)}"
        )
        await demo.traffic(seconds, concurrency, memory)
    demo.report.invariants = check_invariants(database_url)
    return demo.report
