"""The REST client of the demo (and what ``ops.seed`` shares with it).

:func:`api_base` is where the local API answers and :func:`routes_of` reads what
is deployed from the OpenAPI document; both are used by the seed too.
:class:`ApiClient` is the demo's accounted client: each logical request is
counted per kind in a :class:`~ops.demo.report.DemoReport`, sent from its
actor's address with its token, paced, with 429s waited out and one re-login
on 401.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from ece.settings import Settings
from ops.demo.report import DemoReport, KindStats

# Starlette's answers for a path or method that no route serves (vs "listing not found").
ROUTE_MISSES = ("Not Found", "Method Not Allowed")


class SetupFailed(RuntimeError):
    """The demo cannot start (API unreachable, admin cannot log in, ...)."""


def api_base(settings: Settings) -> str:
    """The REST base URL of the local API (a wildcard bind address is reached on loopback)."""
    host = settings.api_host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{settings.api_port}/api/v1"


def routes_of(openapi: dict[str, Any]) -> set[str]:
    """``"METHOD /path/{}"`` for each operation of an OpenAPI document, below ``/api/v1``."""
    routes = set()
    for path, operations in openapi.get("paths", {}).items():
        template = re.sub(r"\{[^}]+\}", "{}", path.removeprefix("/api/v1"))
        for method in operations:
            routes.add(f"{method.upper()} {template}")
    return routes


_ID = re.compile(r"/[0-9a-fA-F]{8}-[0-9a-fA-F-]{27,}|/\d+(?=/|$)")


def route_of(method: str, path: str) -> str:
    """``"POST /listings/{}/purchase"``: the template of one request (ids folded)."""
    return f"{method} {_ID.sub('/{}', path)}"


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


class ApiClient:
    """HTTP with accounting: every request counted in ``report`` under its kind."""

    def __init__(self, http: httpx.AsyncClient, *, user_rps: float = 0.0) -> None:
        self.http = http
        self.user_rps = user_rps
        self.report = DemoReport()
        self.deadline = 0.0  # how long a 429 may be waited out

    def route_missing(self, kind: str, why: str) -> None:
        """A request of ``kind`` hit a route that is not deployed (subclasses react)."""

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
                self.report.sample(f"{method} {path}: {type(exc).__name__}: {exc}")
                return None
            elapsed = time.perf_counter() - started
            stats.latencies.append(elapsed)
            route = self.report.routes[route_of(method, path)]
            route.sent += 1
            route.latencies.append(elapsed)
            if r.status_code >= 500:
                stats.server_errors += 1
                route.server_errors += 1
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
                    self.report.sample(str(exc))
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
            self.report.sample(f"{method} {path}: {r.status_code} {r.text[:200]}")
            return
        if r.status_code in (404, 405) and body.get("detail") in ROUTE_MISSES:
            stats.errors += 1
            self.route_missing(kind, f"{method} {path} answered {r.status_code}")
            return
        stats.refused += 1
        self.report.refusals[f"{kind}: {body.get('code', r.status_code)}"] += 1

    async def items(self, actor: Actor, path: str, **params: Any) -> list[dict[str, Any]]:
        """One page of a list, read as ``actor`` (its address and token, as a client would)."""
        r = await self.call(actor, "read", "GET", path, params={"limit": 50, **params})
        if r is None or r.status_code != 200:
            return []
        return list(r.json().get("items", []))

    async def login(self, actor: Actor) -> None:
        body = {"login": actor.name, "password": actor.password}
        stats = self.report.stats["login"]
        stats.sent += 1
        started = time.perf_counter()
        r = await self.http.post("/auth/login", json=body, headers={"X-Forwarded-For": actor.ip})
        stats.latencies.append(time.perf_counter() - started)
        if r.status_code != 200:
            stats.errors += 1
            raise SetupFailed(f"login of {actor.name}: {r.status_code} {r.text[:200]}")
        stats.ok += 1
        actor.token = r.json()["access_token"]

    async def routes(self) -> set[str]:
        """What the API deploys, from its OpenAPI document."""
        try:
            r = await self.http.get("/openapi.json")
        except httpx.HTTPError as exc:
            raise SetupFailed(f"API unreachable at {self.http.base_url}: {exc}") from exc
        if r.status_code != 200:
            raise SetupFailed(f"GET /openapi.json: {r.status_code}")
        return routes_of(r.json())
