"""``ece demo``: realistic marketplace traffic over the real REST API.

Simulated users register, get deposits, receive cards, then for ``--minutes``
list, delist, buy, auction, bid, offer trades, accept or reject them and mint,
concurrently, the way real clients would (money-moving POSTs carry an
``Idempotency-Key``). It finishes with a summary per request type and the
invariants that must hold whatever the traffic did: the ledger sums to zero, no
listing sold twice, no negative user balance, every ledger transaction balanced.

The demo adapts to what is deployed: an action whose route is absent from the
OpenAPI document (or answers a route-level 404) is skipped with one warning line.
Business refusals (``listing_not_active``, ``bid_too_low``, ...) are expected in
a busy market and counted apart from errors (5xx, transport failures).

Each simulated user talks from its own address (``X-Forwarded-For``, honoured by
uvicorn from loopback), so per-IP rate limits apply per simulated user; a 429 is
waited out (``Retry-After``) and counted, never treated as an error.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import typer

from ece.settings import Settings, get_settings

PROGRESS_EVERY_S = 5.0
DEFAULT_USERS = 10
DEFAULT_CARDS = 50
DEFAULT_MINUTES = 1.0
# Below the default per-user limit (600/min): a paced demo user is never throttled.
DEFAULT_USER_RPS = 8.0
# Starlette's answers for a path or method that no route serves (vs "listing not found").
ROUTE_MISSES = ("Not Found", "Method Not Allowed")


def routes_of(openapi: dict[str, Any]) -> set[str]:
    """``"METHOD /path/{}"`` for each operation of an OpenAPI document, below ``/api/v1``."""
    routes = set()
    for path, operations in openapi.get("paths", {}).items():
        template = re.sub(r"\{[^}]+\}", "{}", path.removeprefix("/api/v1"))
        for method in operations:
            routes.add(f"{method.upper()} {template}")
    return routes


@dataclass
class Actor:
    """A simulated client: credentials, token and the address it calls from."""

    name: str
    ip: str
    password: str | None = None
    user_id: str = ""
    token: str = ""
    next_slot: float = 0.0

    async def pace(self, per_second: float) -> None:
        """Space this client's requests (think time), staying under per-user rate limits."""
        if per_second <= 0:
            return
        now = time.monotonic()
        slot = max(now, self.next_slot)
        self.next_slot = slot + 1 / per_second
        if slot > now:
            await asyncio.sleep(slot - now)


@dataclass
class KindStats:
    sent: int = 0
    ok: int = 0
    refused: int = 0
    rate_limited: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(int(len(ordered) * p), len(ordered) - 1)] * 1000


@dataclass
class Invariants:
    ledger_sum_cents: int | None = None
    double_sales: int | None = None
    negative_balances: int | None = None
    unbalanced_transactions: int | None = None
    error: str | None = None

    @property
    def hold(self) -> bool:
        return self.error is None and (
            self.ledger_sum_cents,
            self.double_sales,
            self.negative_balances,
            self.unbalanced_transactions,
        ) == (0, 0, 0, 0)


@dataclass
class DemoReport:
    seconds: float = 0.0
    stats: dict[str, KindStats] = field(default_factory=lambda: defaultdict(KindStats))
    refusals: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    invariants: Invariants = field(default_factory=Invariants)

    @property
    def requests(self) -> int:
        return sum(s.sent for s in self.stats.values())

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.stats.values())

    def count(self, kind: str) -> int:
        return self.stats[kind].ok if kind in self.stats else 0


class SetupFailed(RuntimeError):
    """The demo cannot start (API unreachable, admin cannot log in, ...)."""


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


class Demo:
    """One demo run: setup, concurrent traffic until the deadline, then the report."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        rng: random.Random,
        say: Callable[[str], None],
        user_rps: float = 0.0,
    ) -> None:
        self.http = http
        self.user_rps = user_rps
        self.rng = rng
        self.say = say
        self.report = DemoReport()
        self.admin = Actor("admin", "10.77.0.1")
        self.users: list[Actor] = []
        self.enabled: dict[str, float] = {}
        self.deadline = 0.0

    # --- HTTP with accounting ---------------------------------------------------

    async def call(
        self,
        actor: Actor | None,
        kind: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotent: bool = False,
    ) -> httpx.Response | None:
        """One logical request: waits out 429s, re-logs in once on 401, classifies."""
        stats = self.report.stats[kind]
        headers: dict[str, str] = {}
        if actor is not None:
            headers["X-Forwarded-For"] = actor.ip
        if idempotent:
            headers["Idempotency-Key"] = uuid.uuid4().hex
        relogged = False
        while True:
            if actor is not None:
                await actor.pace(self.user_rps)
                if actor.token:
                    headers["Authorization"] = f"Bearer {actor.token}"
            stats.sent += 1
            started = time.perf_counter()
            try:
                r = await self.http.request(method, path, json=json, params=params, headers=headers)
            except httpx.HTTPError as exc:
                stats.errors += 1
                self._sample(f"{method} {path}: {type(exc).__name__}: {exc}")
                return None
            stats.latencies.append(time.perf_counter() - started)
            if r.status_code == 429:
                stats.rate_limited += 1
                retry_after = float(r.headers.get("Retry-After", "1"))
                wait = min(retry_after, self.deadline - time.monotonic())
                if wait <= 0:
                    return None
                await asyncio.sleep(wait)
                continue
            if r.status_code == 401 and actor is not None and actor.password and not relogged:
                relogged = True  # the access token expired during a long run
                stats.refused += 1
                try:
                    await self.login(actor)
                except SetupFailed as exc:
                    stats.errors += 1
                    self._sample(str(exc))
                    return None
                continue
            self._classify(kind, method, path, r, stats)
            return r

    def _classify(
        self, kind: str, method: str, path: str, r: httpx.Response, stats: KindStats
    ) -> None:
        if r.status_code < 400:
            stats.ok += 1
            return
        try:
            body = r.json()
        except ValueError:
            body = {}
        if r.status_code >= 500 or not isinstance(body, dict):
            stats.errors += 1
            self._sample(f"{method} {path}: {r.status_code} {r.text[:200]}")
            return
        if r.status_code in (404, 405) and body.get("detail") in ROUTE_MISSES:
            stats.errors += 1
            self._disable(kind, f"{method} {path} answered {r.status_code}")
            return
        stats.refused += 1
        self.report.refusals[f"{kind}: {body.get('code', r.status_code)}"] += 1

    def _sample(self, line: str) -> None:
        if len(self.report.error_samples) < 10:
            self.report.error_samples.append(line)

    def _disable(self, action: str, why: str) -> None:
        if self.enabled.pop(action, None) is not None:
            self.report.skipped[action] = why
            self.say(f"warning: skipping {action}: {why}")

    async def items(self, actor: Actor, path: str, **params: Any) -> list[dict[str, Any]]:
        """One page of a list, read as ``actor`` (its address and token, as a client would)."""
        r = await self.call(actor, "read", "GET", path, params={"limit": 50, **params})
        if r is None or r.status_code != 200:
            return []
        return list(r.json().get("items", []))

    # --- setup --------------------------------------------------------------------

    async def login(self, actor: Actor) -> None:
        body = {"login": actor.name, "password": actor.password}
        stats = self.report.stats["login"]
        stats.sent += 1
        started = time.perf_counter()
        r = await self.http.post("/auth/login", json=body, headers={"X-Forwarded-For": actor.ip})
        stats.latencies.append(time.perf_counter() - started)
        if r.status_code != 200:
            self.report.stats["login"].errors += 1
            raise SetupFailed(f"login of {actor.name}: {r.status_code} {r.text[:200]}")
        self.report.stats["login"].ok += 1
        actor.token = r.json()["access_token"]

    async def discover(self) -> None:
        try:
            r = await self.http.get("/openapi.json")
        except httpx.HTTPError as exc:
            raise SetupFailed(f"API unreachable at {self.http.base_url}: {exc}") from exc
        if r.status_code != 200:
            raise SetupFailed(f"GET /openapi.json: {r.status_code}")
        routes = routes_of(r.json())
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
        run = uuid.uuid4().hex[:6]
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
                "reference": f"demo:{actor.name}",
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
        while time.monotonic() < self.deadline and self.enabled:
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

    async def traffic(self, seconds: float, concurrency: int) -> None:
        started = time.monotonic()
        self.deadline = started + seconds
        ticker = asyncio.create_task(self.progress(started))
        try:
            await asyncio.gather(*(self.worker() for _ in range(concurrency)))
        finally:
            ticker.cancel()
        self.report.seconds = time.monotonic() - started


INVARIANT_SQL = {
    "ledger_sum_cents": "SELECT coalesce(sum(balance_cents), 0) FROM ledger_accounts",
    "double_sales": "SELECT count(*) FROM (SELECT listing_id FROM sales GROUP BY listing_id "
    "HAVING count(*) > 1) AS twice",
    "negative_balances": "SELECT count(*) FROM ledger_accounts "
    "WHERE user_id IS NOT NULL AND balance_cents < 0",
    "unbalanced_transactions": "SELECT count(*) FROM (SELECT transaction_id FROM ledger_entries "
    "GROUP BY transaction_id HAVING sum(amount_cents) <> 0) AS bad",
}


def check_invariants(database_url: str) -> Invariants:
    """The marketplace invariants, read in one read-only snapshot of the database."""
    import psycopg

    result = Invariants()
    try:
        with psycopg.connect(
            database_url, connect_timeout=5, options="-c default_transaction_read_only=on"
        ) as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            for name, sql in INVARIANT_SQL.items():
                row = conn.execute(sql).fetchone()
                setattr(result, name, int(row[0]) if row else None)
    except psycopg.Error as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:300]
    return result


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
) -> DemoReport:
    """Set up, drive traffic for ``seconds``, check the invariants; the report."""
    async with httpx.AsyncClient(base_url=api.rstrip("/"), timeout=30) as http:
        demo = Demo(http, rng=random.Random(seed), say=say, user_rps=user_rps)
        await demo.setup(admin_login, admin_password, users, cards)
        say(
            f"driving traffic for {seconds:.0f}s with {concurrency} concurrent clients: "
            f"{', '.join(demo.enabled)}"
        )
        await demo.traffic(seconds, concurrency)
    demo.report.invariants = check_invariants(database_url)
    return demo.report


def print_report(report: DemoReport, echo: Callable[[str], None]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ece demo: {report.requests} requests in {report.seconds:.1f}s")
    for column in ("type", "sent", "ok", "refused", "429", "errors", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for kind, s in sorted(report.stats.items()):
        table.add_row(
            kind,
            str(s.sent),
            str(s.ok),
            str(s.refused),
            str(s.rate_limited),
            str(s.errors),
            f"{s.percentile(0.5):.0f}",
            f"{s.percentile(0.99):.0f}",
        )
    Console(width=100).print(table)
    if report.refusals:
        echo(
            "refusals (expected in a busy market): "
            + ", ".join(f"{k} x{n}" for k, n in report.refusals.most_common(12))
        )
    for action, why in report.skipped.items():
        echo(f"skipped {action}: {why}")
    for line in report.error_samples:
        echo(f"error: {line}")
    inv = report.invariants
    if inv.error:
        echo(f"invariants: could not read the database: {inv.error}")
        return
    echo(f"errors: {report.errors}")
    echo(f"ledger sum: {inv.ledger_sum_cents} cents (must be 0)")
    echo(f"double sales: {inv.double_sales} (must be 0)")
    echo(f"negative balances: {inv.negative_balances} (must be 0)")
    echo(f"unbalanced ledger transactions: {inv.unbalanced_transactions} (must be 0)")
    echo("invariants: OK" if inv.hold else "invariants: VIOLATED")


def demo(
    users: int = typer.Option(DEFAULT_USERS, "--users", min=2, help="simulated users"),
    cards: int = typer.Option(DEFAULT_CARDS, "--cards", min=1, help="cards issued to them"),
    minutes: float = typer.Option(
        DEFAULT_MINUTES, "--minutes", min=0.0, help="how long to drive traffic (fractions allowed)"
    ),
    api: str = typer.Option("", "--api", help="API base URL (default: the local stack's)"),
    concurrency: int = typer.Option(
        0, "--concurrency", min=0, help="concurrent clients (default: one per user, at most 16)"
    ),
    user_rps: float = typer.Option(
        DEFAULT_USER_RPS,
        "--user-rps",
        min=0.0,
        help="requests per second per simulated user (think time; 0: as fast as possible)",
    ),
    admin_login: str = typer.Option(
        "", "--admin-login", help="admin login (default: the seed admin)"
    ),
    admin_password: str = typer.Option(
        "",
        "--admin-password",
        envvar="ECE_DEMO_ADMIN_PASSWORD",
        help="default: data/secrets/admin_password",
    ),
    seed: int | None = typer.Option(None, "--seed", help="random seed for a reproducible mix"),
) -> None:
    """Drive realistic traffic (registrations, deposits, listings, purchases, auctions,
    bids, trades, mints) and check the ledger invariants at the end (exit 1 if broken)."""
    from ops.seed import api_base, ensure_admin

    settings: Settings = get_settings()
    if not admin_password:
        admin_login, admin_password = ensure_admin(settings)
    try:
        report = asyncio.run(
            run_demo(
                api=api or api_base(settings),
                admin_login=admin_login or "admin",
                admin_password=admin_password,
                users=users,
                cards=cards,
                seconds=minutes * 60,
                concurrency=concurrency or min(users, 16),
                database_url=settings.database_url,
                user_rps=user_rps,
                say=lambda line: typer.echo(line, err=False),
                seed=seed,
            )
        )
    except SetupFailed as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    print_report(report, typer.echo)
    if not report.invariants.hold:
        raise typer.Exit(1)


demo_app = typer.Typer(help="Drive realistic traffic against the API.", add_completion=False)
demo_app.command()(demo)
