"""The small demo data set that `ece up` loads (unless ``ECE_SEED=0``).

Everything after the first admin goes through the real REST API, so the seed data
is exactly what users would have produced: audit events, ledger transactions, card
history and CDC events included. The first admin cannot be made through the API
(only admins grant roles), so it is created the way ``ece admin create`` does it.

Idempotent: each step looks before it writes (user exists? card number issued?
deposit present? active listing?), so running it again, or after a crash half way,
completes the set without duplicating anything.

Credentials (never printed, never in git: ``data/`` is ignored):

* ``data/secrets/admin_password``: the password of ``admin``;
* ``data/secrets/demo_password``: the password of the demo users (alice, bob, ...).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from ece.settings import Settings
from ops.demo.client import api_base, routes_of

ADMIN_USERNAME = "admin"
ADMIN_EMAIL = "admin@example.com"
SEED_USERS = ("alice", "bob", "carol", "dave")
SEED_SET = "ECE Genesis"
SEED_CARDS = 36
SEED_DEPOSIT_CENTS = 2_500_00
LISTINGS_PER_USER = 2

RARITIES = (
    "common",
    "common",
    "common",
    "uncommon",
    "uncommon",
    "rare",
    "rare",
    "epic",
    "legendary",
)
CREATURES = (
    "Dragon",
    "Phoenix",
    "Kraken",
    "Golem",
    "Wyvern",
    "Sphinx",
    "Basilisk",
    "Griffin",
    "Leviathan",
    "Chimera",
    "Hydra",
    "Unicorn",
)
EPITHETS = ("Ancient", "Crimson", "Frost", "Shadow", "Storm", "Golden", "Iron", "Verdant", "Void")


def card_fields(index: int) -> dict[str, Any]:
    """A deterministic card for ``index`` (so re-runs recognise what exists by number)."""
    name = f"{EPITHETS[index % len(EPITHETS)]} {CREATURES[index % len(CREATURES)]}"
    return {
        "name": name,
        "set_name": SEED_SET,
        "number": f"{index + 1:03d}",
        "rarity": RARITIES[index % len(RARITIES)],
        "edition": "first",
        "attributes": {"power": 10 + (index * 7) % 90, "element": EPITHETS[index % 9].lower()},
    }


async def ensure_admin_async(settings: Settings) -> tuple[str, str]:
    """``(username, password)`` of the seed admin, creating it in the database if absent.

    The password is generated into ``data/secrets/admin_password`` before the user is
    created, so a crash in between cannot leave an admin nobody can log in as.
    """
    from sqlalchemy import func, select
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from api.audit.chain import AuditContext
    from api.core.problems import Problem
    from api.users.models import User
    from api.users.service import create_admin

    password = settings.secret("admin_password")
    # Its own short-lived engine, as in `ece admin create`: callers may run an app too.
    engine = create_async_engine(settings.sqlalchemy_url)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            exists = await session.scalar(
                select(User.id).where(func.lower(User.username) == ADMIN_USERNAME)
            )
            if exists is None:
                try:
                    await create_admin(
                        session,
                        AuditContext(actor_id=None, ip="seed"),
                        email=ADMIN_EMAIL,
                        username=ADMIN_USERNAME,
                        password=password,
                    )
                except Problem as exc:  # a concurrent seed created it first
                    if exc.status != 409:
                        raise
    finally:
        await engine.dispose()
    return ADMIN_USERNAME, password


def ensure_admin(settings: Settings) -> tuple[str, str]:
    return asyncio.run(ensure_admin_async(settings))


@dataclass
class SeedResult:
    users: int = 0
    cards: int = 0
    deposits: int = 0
    listings: int = 0
    skipped: list[str] = field(default_factory=list)

    def describe(self) -> str:
        made = (
            f"{self.users} users, {self.cards} cards, {self.deposits} deposits, "
            f"{self.listings} listings created"
        )
        return made + (f" (skipped: {'; '.join(self.skipped)})" if self.skipped else "")


class SeedError(RuntimeError):
    """The API answered something the seed cannot work around."""


def _check(r: httpx.Response, *ok: int) -> httpx.Response:
    if r.status_code not in ok:
        raise SeedError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]}")
    return r


def _login(http: httpx.Client, login: str, password: str) -> str | None:
    r = http.post("/auth/login", json={"login": login, "password": password})
    return str(r.json()["access_token"]) if r.status_code == 200 else None


def _routes(http: httpx.Client) -> set[str]:
    """``"METHOD /path/{}"`` of every deployed operation (parameters normalised)."""
    return routes_of(_check(http.get("/openapi.json"), 200).json())


def _pages(
    http: httpx.Client, path: str, params: dict[str, Any], token: str | None = None
) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": 200, **({"cursor": cursor} if cursor else {})}
        body = _check(http.get(path, params=query, headers=headers), 200).json()
        items.extend(body["items"])
        cursor = body.get("next_cursor")
        if not cursor:
            return items


def _ensure_user(
    http: httpx.Client, name: str, password: str, result: SeedResult
) -> tuple[str, str] | None:
    """``(user_id, access_token)`` of a demo user, registering it when absent."""
    r = http.post(
        "/auth/register",
        json={"email": f"{name}@example.com", "username": name, "password": password},
    )
    if r.status_code == 201:
        result.users += 1
    elif r.status_code != 409:
        _check(r, 201)
    token = _login(http, name, password)
    if token is None:
        result.skipped.append(f"{name}: exists with another password")
        return None
    me = _check(http.get("/me", headers={"Authorization": f"Bearer {token}"}), 200).json()
    return str(me["id"]), token


def seed(settings: Settings, http: httpx.Client) -> SeedResult:
    """Bring the demo data set to completion through ``http`` (see module docstring)."""
    result = SeedResult()
    admin_user, admin_password = ensure_admin(settings)
    admin_token = _login(http, admin_user, admin_password)
    if admin_token is None:
        raise SeedError("cannot log in as admin with data/secrets/admin_password")
    admin = {"Authorization": f"Bearer {admin_token}"}
    routes = _routes(http)
    password = settings.secret("demo_password")

    users: dict[str, tuple[str, str]] = {}
    for name in SEED_USERS:
        found = _ensure_user(http, name, password, result)
        if found is not None:
            users[name] = found
    if not users:
        return result
    owners = list(users.values())

    issued = {c["number"] for c in _pages(http, "/cards", {"set_name": SEED_SET})}
    for index in range(SEED_CARDS):
        fields = card_fields(index)
        if fields["number"] in issued:
            continue
        owner_id = owners[index % len(owners)][0]
        _check(http.post("/cards", json={**fields, "owner_id": owner_id}, headers=admin), 201)
        result.cards += 1

    if "POST /admin/deposits" in routes and "GET /me/ledger" in routes:
        for name, (user_id, token) in users.items():
            entries = _pages(http, "/me/ledger", {}, token)
            if any(e.get("kind") == "deposit" for e in entries):
                continue
            body = {
                "user_id": user_id,
                "amount_cents": SEED_DEPOSIT_CENTS,
                "reference": f"seed:{name}",
            }
            _check(http.post("/admin/deposits", json=body, headers=admin), 201)
            result.deposits += 1
    else:
        result.skipped.append("deposits (POST /admin/deposits not deployed)")

    if "POST /listings" in routes and "GET /listings" in routes:
        for index, (user_id, token) in enumerate(users.values()):
            if _pages(http, "/listings", {"seller_id": user_id}):
                continue
            mine = _pages(
                http, "/cards", {"owner_id": user_id, "status": "available", "set_name": SEED_SET}
            )
            for n, card in enumerate(mine[:LISTINGS_PER_USER]):
                price = 1_000 + 500 * ((index * LISTINGS_PER_USER + n) % 17)
                r = http.post(
                    "/listings",
                    json={"card_id": card["id"], "price_cents": price},
                    headers={"Authorization": f"Bearer {token}"},
                )
                _check(r, 201)
                result.listings += 1
    else:
        result.skipped.append("listings (POST /listings not deployed)")
    return result


def seed_demo_data(settings: Settings, say: Callable[[str], None]) -> None:
    """Called by `ece up` once the API answers: load the demo data set, never fail `up`."""
    if settings.env == "prod":
        say("demo data: skipped in prod")
        return
    say("loading demo data (ECE_SEED=0 skips) ...")
    try:
        with httpx.Client(base_url=api_base(settings), timeout=60) as http:
            result = seed(settings, http)
    except (SeedError, httpx.HTTPError) as exc:
        say(f"demo data: not loaded: {exc}")
        return
    say(
        f"demo data: {result.describe()}; log in as {ADMIN_USERNAME} "
        f"(password in {settings.secrets_dir / 'admin_password'})"
    )
