"""Schemathesis fuzzes every operation of the live OpenAPI document (issue 12, item 10).

The real app runs under uvicorn (``live_url``: the stack's own way of starting it, on a
free port, against the session's PostgreSQL and Redis). Schemathesis reads
``/api/v1/openapi.json`` from it, generates requests that fit the schema (positive)
and requests that break it (negative), sends them, and runs its default checks on each
answer: no 5xx, a status code the operation declares, a declared content type, a body
and headers that validate against the declared schema, schema-valid data not rejected
(no 400/422), schema-breaking data not accepted (no 2xx), and authentication enforced
where it is declared (it re-sends a 2xx request without and with a wrong token).

Two passes: anonymously over every operation, then with a real user's bearer token
(users registered and logged in through the API) over the operations that declare
``HTTPBearer``, so those are exercised beyond 401. A fresh user serves every
``OPS_PER_USER`` operations: one user sending everything would run into the per-user
request limit (600 a minute) and fuzz the limiter instead of the API. The traffic
comes from its own loopback address (``SOURCE_ADDRESS``) so that the failed logins it
generates count against that address's lockout budget, not 127.0.0.1's, which the rest
of the session logs in from.

Anonymous negative data goes only to the operations without ``HTTPBearer``: for the
others it would stop at the 401, and the user pass sends it past that.

Deliberately not fuzzed:

- ``/api/v1/ws`` (the WebSocket): not an HTTP operation, absent from the OpenAPI
  document; ``tests/api/notifications`` drive it with a real client.
- ``/metrics``, ``/docs``, ``/redoc``, ``/live``: excluded from the schema
  (``include_in_schema=False``), nothing to check them against.
- :data:`EXCLUDED`: each entry names its finding.

Some schema-valid requests break rules no JSON Schema can state (a card that must
exist, a cursor only the server can make, min <= max): the API refuses them with 422
and must. :data:`SEMANTIC_422` lists, per operation, where such a 422 may point; any
other 422 to a positive case still fails.

``POST /auth/logout`` *is* fuzzed: it only revokes the refresh session it is given
when that session is the caller's, and a generated token never is, so it cannot end
the fuzz user's session.

Why a loop over ``APIOperation.as_strategy`` rather than ``schema.parametrize()``:
the document's address is known only once the session fixture has started uvicorn,
the run must be bounded (``MAX_EXAMPLES`` per operation and mode, a fixed seed, no
shrinking against a live server), and the one assertion must list every failure with
the figures (operations, cases, failures by kind) rather than stop at the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from requests.adapters import HTTPAdapter
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err, Ok
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.support.apitest import Account, register_and_login

SEED = 20261201
MAX_EXAMPLES = 10  # per operation and generation mode
OPS_PER_USER = 8
SOURCE_ADDRESS = "127.0.0.213"
# Operations left out, each with the finding that keeps it out (see docs/fuzzing.md).
EXCLUDED: dict[tuple[str, str], str] = {
    # Finding (api/oauth/router.py, not changed here): its four query parameters take
    # 4096 characters each, up to ~196 KB of URL once percent-encoded, past what uvicorn
    # reads of a request head: it answers a plain-text "400 Invalid HTTP request
    # received." before the app runs (not problem+json, not in the schema). Needs caps
    # that fit (e.g. code 2048, state/error/iss 512) or a declared 400/414.
    ("GET", "/api/v1/auth/oauth/{provider}/callback"): "request line over uvicorn's limit",
}
# Schema-valid requests the API may still refuse with 422, by where the problem's
# ``errors`` point: rules no JSON Schema can state (server state, the clock, a relation
# between two fields, bytes a string must decode to). A 422 whose every error is at one
# of these places passes ``positive_data_acceptance``; any other 422 still fails it.
ANYWHERE = {
    "query.cursor": "cursors are opaque: only one the endpoint returned is valid (rest.md)",
}
SEMANTIC_422: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/api/v1/listings"): {"query.min_price_cents": "min_price_cents <= max_price_cents"},
    ("POST", "/api/v1/listings"): {"body.card_id": "the card must exist (api/cards/errors.py)"},
    ("POST", "/api/v1/auctions"): {
        "body.card_id": "the card must exist (api/cards/errors.py)",
        "body": "reserve_price_cents must not be below start_price_cents",
    },
    ("POST", "/api/v1/trade-offers"): {
        "body.card_ids": "the cards must exist (api/cards/errors.py)",
        "body.expires_at": "1 minute to 30 days from now: moves with the clock",
    },
    **{
        ("POST", path): {
            "body.address": "base58 of 32 bytes, a point on the ed25519 curve",
            "body.signature": "base58 of 64 bytes",
        }
        for path in ("/api/v1/auth/wallet/challenge", "/api/v1/auth/wallet/login",
                     "/api/v1/me/wallets")
    },
    # Findings in packages this task does not change (reported, see docs/fuzzing.md):
    # api/watchlists/schemas.py AlertIn: "at least one of card_id, set_name, rarity" is a
    # model validator (loc "body") the schema could state with anyOf, as TradeOfferCreate
    # now does.
    # And its max_price_cents is strict=True: refuses 1000.0, which `type: integer`
    # accepts (the ledger, listing and auction amounts now take it: api.core.integers).
    ("POST", "/api/v1/me/alerts"): {
        "body": "at least one of card_id, set_name, rarity",
        "body.max_price_cents": "strict int refuses a whole-valued float",
    },
    # api/notifications/schemas.py: the keys are base64url (no pattern in the schema) of
    # a P-256 point / 16 bytes (beyond any schema).
    ("POST", "/api/v1/me/push-subscriptions"): {
        "body.keys.p256dh": "base64url of an uncompressed P-256 point",
        "body.keys.auth": "base64url of 16 bytes",
    },
}


class _FromAddress(HTTPAdapter):
    """Connections from one loopback address (the API keys rate limits by TCP peer)."""

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


@dataclass
class Figures:
    operations: set[str] = field(default_factory=set)
    cases: int = 0
    semantic_422: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def record(self, label: str, kind: str, title: str, message: str) -> None:
        self.by_kind[kind] += 1
        self.failures.setdefault((label, kind, title), message[:400])

    def report(self) -> str:
        lines = [
            f"operations tested: {len(self.operations)}, cases: {self.cases}, "
            f"positive cases refused by a rule no schema states: {self.semantic_422}",
            f"statuses: {dict(sorted(self.statuses.items()))}",
            f"failures by kind: {dict(self.by_kind) or 'none'}",
            f"slowest: {sorted(self.seconds.items(), key=lambda kv: -kv[1])[:5]}",
        ]
        for (label, kind, title), message in sorted(self.failures.items()):
            lines.append(f"- {label} [{kind}] {title}: {message}")
        return "\n".join(lines)


def _session() -> requests.Session:
    session = requests.Session()
    session.mount("http://", _FromAddress(SOURCE_ADDRESS))
    return session


def _fuzz(
    operation: Any,
    mode: GenerationMode,
    headers: dict[str, str],
    base_url: str,
    session: requests.Session,
    figures: Figures,
) -> None:
    """Up to ``MAX_EXAMPLES`` cases of one operation; every failure recorded, none raised."""
    label = f"{operation.label} ({'user' if headers else 'anonymous'}, {mode.value})"

    @hypothesis.seed(SEED)
    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        phases=[Phase.generate],  # no shrinking: every request is a round trip
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        figures.cases += 1
        sent = {"base_url": base_url, "session": session, "headers": headers, "timeout": 30}
        try:
            response = case.call(**sent)
            figures.statuses[response.status_code] += 1
            waived = []
            if mode is GenerationMode.POSITIVE and _explained_422(operation, response):
                figures.semantic_422 += 1
                waived = [positive_data_acceptance]
            if _not_ready(operation, response):
                waived = [not_a_server_error]
            case.validate_response(response, headers=headers, transport_kwargs=sent,
                                   excluded_checks=waived)
        except FailureGroup as group:
            exchange = _exchange(response)
            for failure in group.exceptions:
                figures.record(label, f"{failure.code} {type(failure).__name__}",
                               failure.title, f"{failure.message} | {exchange}")
        except requests.RequestException as exc:  # a hang or a dropped connection
            figures.record(label, "network", type(exc).__name__, str(exc))

    started = time.monotonic()
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        run()  # Unsatisfiable: no negative case exists, e.g. an operation without parameters
    figures.operations.add(operation.label)
    figures.seconds[label] += time.monotonic() - started


def _exchange(response: Any) -> str:
    """What was sent and what came back, short enough for an assertion message."""
    request = response.request
    body = request.body[:120] if request.body is not None else None
    return (f"{response.status_code} {response.text[:240]} <- {request.method} "
            f"{str(request.url)[:160]} body={body!r}")


def _not_ready(operation: Any, response: Any) -> bool:
    """``/readyz`` answering its declared 503 ``not_ready``: the probe doing its job (a
    loaded machine can push its checks past their 2 s timeout), not a crash."""
    return (operation.path == "/api/v1/readyz" and response.status_code == 503
            and response.json().get("code") == "not_ready")


def _explained_422(operation: Any, response: Any) -> bool:
    """A 422 whose errors all sit where :data:`SEMANTIC_422` allows one for this operation."""
    if response.status_code != 422:
        return False
    allowed = {**ANYWHERE, **SEMANTIC_422.get((operation.method.upper(), operation.path), {})}
    errors = response.json().get("errors") or [{"loc": ["?"]}]
    return all(".".join(str(p) for p in e.get("loc", [])) in allowed for e in errors)


async def _users(live_url: str, count: int) -> list[Account]:
    transport = httpx.AsyncHTTPTransport(local_address=SOURCE_ADDRESS)
    async with httpx.AsyncClient(base_url=live_url, transport=transport, timeout=30) as c:
        return list(await asyncio.gather(*(register_and_login(c) for _ in range(count))))


async def test_every_operation_survives_fuzzing(platform: Any, live_url: str) -> None:
    platform.require("broker")  # /readyz answers 503 not_ready without it
    started = time.monotonic()
    parts = urlsplit(live_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    schema = schemathesis.openapi.from_url(f"{live_url}/openapi.json")
    results = list(schema.get_all_operations())
    invalid = [str(result.err()) for result in results if isinstance(result, Err)]
    assert not invalid, invalid  # every operation's definition is usable
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    fuzzed = [op for op in operations if (op.method.upper(), op.path) not in EXCLUDED]
    secured = [op for op in fuzzed if op.definition.raw.get("security")]
    secured_labels = {op.label for op in secured}
    assert len(operations) >= 60 and len(secured) >= 30  # the whole API, not a stub
    users = await _users(live_url, -(-len(secured) // OPS_PER_USER))
    with _session() as session:
        figures = Figures()
        positive, negative = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
        for operation in fuzzed:
            _fuzz(operation, positive, {}, origin, session, figures)
            if operation.label not in secured_labels:  # secured: negative data in the user pass
                _fuzz(operation, negative, {}, origin, session, figures)
        for index, operation in enumerate(secured):
            headers = users[index // OPS_PER_USER].auth
            for mode in (positive, negative):
                _fuzz(operation, mode, headers, origin, session, figures)
    elapsed = time.monotonic() - started
    report = f"{figures.report()}\nelapsed: {elapsed:.0f} s"
    print(report)
    assert not figures.failures, report
    assert figures.cases >= len(fuzzed) * MAX_EXAMPLES, report  # the run really generated
    assert any(200 <= s < 300 for s in figures.statuses), report
