"""Health, readiness, metrics, OpenAPI, gzip, the audit chain and the admin CLI."""

import asyncio
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from ece.settings import Settings, get_settings
from tests.support.apitest import PASSWORD, Account, Db, assert_problem, unique


async def test_healthz(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    root = await client.get("http://test/healthz")
    assert root.status_code == 200


async def test_readyz_names_the_failing_part(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import api.core.health as health
    from ops.stack.base import free_port

    dead = get_settings().model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"})
    monkeypatch.setattr(health, "get_settings", lambda: dead)
    r = await client.get("/readyz")
    body = assert_problem(r, 503, "not_ready")
    assert body["failing"] == ["kafka"]
    assert body["checks"]["database"] == "ok" and body["checks"]["redis"] == "ok"


async def test_readyz_ok_when_everything_is_up(client: httpx.AsyncClient, platform: Any) -> None:
    platform.require("broker", "solana", "arweave")
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready"
    assert r.json()["checks"] == {
        "database": "ok", "redis": "ok", "kafka": "ok", "solana": "ok", "arweave": "ok"
    }


async def test_readyz_names_a_down_chain_part_but_stays_ready(
    client: httpx.AsyncClient, platform: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mints wait for the chain; REST keeps serving, so the API is degraded, not unready."""
    import api.core.health as health
    from ops.stack.base import free_port

    platform.require("broker")
    dead = get_settings().model_copy(
        update={"solana_rpc_url": f"http://127.0.0.1:{free_port()}"}
    )
    monkeypatch.setattr(health, "get_settings", lambda: dead)
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "degraded"
    assert r.json()["degraded"] == ["solana"]
    assert r.json()["checks"]["solana"] != "ok"


async def test_metrics_by_route_template_and_cache_counters(
    client: httpx.AsyncClient, admin: Account
) -> None:
    r = await client.post(
        "/cards",
        json={"name": "M", "set_name": unique("s"), "number": "1", "rarity": "common"},
        headers=admin.auth,
    )
    cid = r.json()["id"]
    await client.get(f"/cards/{cid}")
    await client.get(f"/cards/{cid}")
    text = (await client.get("http://test/metrics")).text
    assert (
        'ece_http_requests_total{method="GET",route="/api/v1/cards/{card_id}",status="200"}' in text
    )
    assert "ece_http_request_duration_seconds_bucket" in text
    assert 'ece_cache_requests_total{cache="card",result="hit"}' in text
    assert "ece_db_pool_checked_out" in text
    assert cid not in text  # raw paths never become labels
    assert (await client.get("/metrics")).status_code == 200


async def test_openapi_and_docs(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    for path in (
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/me",
        "/api/v1/cards",
        "/api/v1/cards/{card_id}",
        "/api/v1/cards/{card_id}/history",
    ):
        assert path in doc["paths"], path
    assert "Problem" in doc["components"]["schemas"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    register_422 = doc["paths"]["/api/v1/auth/register"]["post"]["responses"]["422"]
    assert "application/problem+json" in register_422["content"]
    assert (await client.get("/docs")).status_code == 200


async def test_gzip_on_request(client: httpx.AsyncClient, admin: Account) -> None:
    set_name = unique("gz")
    for i in range(10):
        await client.post(
            "/cards",
            json={"name": f"Card {i}", "set_name": set_name, "number": str(i), "rarity": "common"},
            headers=admin.auth,
        )
    r = await client.get(
        "/cards", params={"set_name": set_name}, headers={"Accept-Encoding": "gzip"}
    )
    assert r.status_code == 200
    assert r.headers.get("content-encoding") == "gzip"
    assert len(r.json()["items"]) == 10


async def test_request_id_echoed(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz", headers={"X-Request-ID": "abc123"})
    assert r.headers["x-request-id"] == "abc123"


async def test_audit_chain_is_appended_and_verifies(
    client: httpx.AsyncClient, admin: Account, db: Db, api_settings: Settings
) -> None:
    """Writes append unsealed events (no lock); the sealer chains them; verify passes."""
    from api.audit.chain import GENESIS_HASH
    from api.audit.verify import verify_chain
    from api.core.db import get_sessionmaker
    from tests.api.audit.audittest import drain

    last = db.value("SELECT coalesce(max(id), 0) FROM audit_events")
    await client.post(
        "/cards",
        json={"name": "A", "set_name": unique("s"), "number": "1", "rarity": "common"},
        headers=admin.auth,
    )
    await client.post("/auth/login", json={"login": admin.username, "password": "wrong-password"})
    rows = db.rows("SELECT id, action FROM audit_events WHERE id > %s ORDER BY id", last)
    assert [r[1] for r in rows] == ["card.issue", "auth.login_failed"]
    await drain(api_settings.audit_key)
    seals = db.rows(
        "SELECT seq, prev_hash, hash, event_id FROM audit_seals ORDER BY seq", )
    by_event = {s[3]: s for s in seals}
    assert all(r[0] in by_event for r in rows), "every committed event is sealed"
    previous = GENESIS_HASH
    for seq, prev_hash, hash_, _ in seals:  # one unbroken chain from genesis
        assert prev_hash == previous and len(hash_) == 64, f"seal {seq} is not linked"
        previous = hash_
    async with get_sessionmaker()() as session:
        report = await verify_chain(session, api_settings.audit_key)
    assert report.ok and report.first_bad_id is None
    assert report.checked == len(seals)


async def test_concurrent_writes_keep_one_chain(
    client: httpx.AsyncClient, admin: Account, db: Db, api_settings: Settings
) -> None:
    import asyncio

    from tests.api.audit.audittest import drain

    before = db.value("SELECT coalesce(max(id), 0) FROM audit_events")
    await asyncio.gather(
        *(
            client.post(
                "/cards",
                json={"name": f"C{i}", "set_name": unique("s"), "number": "1", "rarity": "common"},
                headers=admin.auth,
            )
            for i in range(12)
        )
    )
    await drain(api_settings.audit_key)
    written = db.value("SELECT count(*) FROM audit_events WHERE id > %s", before)
    sealed = db.value(
        "SELECT count(*) FROM audit_seals s JOIN audit_events e ON e.id = s.event_id "
        "WHERE e.id > %s", before)
    assert written >= 12 and sealed == written
    # Every seal's prev_hash is the hash of the seal before it: no fork, no gap.
    forks = db.value(
        "SELECT count(*) FROM (SELECT seq, prev_hash, lag(hash) OVER (ORDER BY seq) AS before, "
        "lag(seq) OVER (ORDER BY seq) AS before_seq FROM audit_seals) t "
        "WHERE before IS NOT NULL AND (prev_hash <> before OR seq <> before_seq + 1)"
    )
    assert forks == 0


def test_verify_detects_tampering() -> None:
    """Pure check of the hash rule (the table itself refuses UPDATE)."""
    from datetime import UTC, datetime

    from api.audit.chain import GENESIS_HASH, canonical_event, chain_hash

    at = datetime(2026, 1, 1, tzinfo=UTC)
    event = dict(
        actor_id=None, action="a", entity="e", entity_id="1", ip=None, details={"x": 1}, at=at
    )
    h = chain_hash(GENESIS_HASH, canonical_event(**event))  # type: ignore[arg-type]
    tampered = chain_hash(GENESIS_HASH, canonical_event(**{**event, "details": {"x": 2}}))  # type: ignore[arg-type]
    assert h != tampered
    assert canonical_event(**{**event, "details": {"b": 1, "a": 2}}) == canonical_event(  # type: ignore[arg-type]
        **{**event, "details": {"a": 2, "b": 1}}  # type: ignore[arg-type]
    )


def test_envelope_crypto_roundtrip_and_binding() -> None:
    from api.core.crypto import DecryptionError, EnvelopeCipher

    cipher = EnvelopeCipher.from_secret("k" * 40, "custody")
    blob = cipher.seal(b"secret", aad=b"user-1")
    assert cipher.open(blob, aad=b"user-1") == b"secret"
    assert cipher.seal(b"secret", aad=b"user-1") != blob  # fresh data key and nonces
    for wrong in (
        lambda: cipher.open(blob, aad=b"user-2"),
        lambda: EnvelopeCipher.from_secret("other" * 8, "custody").open(blob, aad=b"user-1"),
        lambda: cipher.open(blob[:-1] + bytes([blob[-1] ^ 1]), aad=b"user-1"),
        lambda: cipher.open(b"\x02" + blob[1:], aad=b"user-1"),
    ):
        with pytest.raises(DecryptionError):
            wrong()
    assert EnvelopeCipher.from_secret("k" * 40, "images").key_id != cipher.key_id


def test_cursor_roundtrip_and_garbage() -> None:
    import uuid
    from datetime import UTC, datetime

    from api.core.pagination import decode_cursor, encode_cursor
    from api.core.problems import Problem

    at, rid = datetime.now(UTC), uuid.uuid4()
    assert decode_cursor(encode_cursor(at, rid)) == (at, rid)
    for junk in ("", "!!", "bm90IGpzb24", encode_cursor(at, rid)[:-3]):
        with pytest.raises(Problem):
            decode_cursor(junk)


def test_logging_redacts_secrets() -> None:
    from api.core.logs import redact

    out = redact(None, "info", {"event": "x", "password": "p", "refresh_token": "t", "user": "u"})
    assert out == {
        "event": "x",
        "password": "[redacted]",
        "refresh_token": "[redacted]",
        "user": "u",
    }


async def test_admin_cli_creates_admin(
    client: httpx.AsyncClient, db: Db, api_settings: Any
) -> None:
    from ops.cli.admin import admin_app

    name = unique("cli")
    runner = CliRunner()

    def invoke(args: list[str]) -> Any:  # the command runs its own event loop: use a thread
        return asyncio.to_thread(runner.invoke, admin_app, args)

    result = await invoke(
        ["create", "--email", f"{name}@example.com", "--username", name, "--password", PASSWORD],
    )
    assert result.exit_code == 0, result.output
    user_id = db.value("SELECT id FROM users WHERE username = %s", name)
    assert db.value("SELECT role FROM users WHERE id = %s", user_id) == "admin"
    actions = [
        r[0]
        for r in db.rows(
            "SELECT action FROM audit_events WHERE entity_id = %s ORDER BY id", str(user_id)
        )
    ]
    assert actions == ["user.register", "user.role_changed"]
    assert db.value("SELECT count(*) FROM ledger_accounts WHERE user_id = %s", user_id) == 2
    login = await client.post("/auth/login", json={"login": name, "password": PASSWORD})
    me = await client.get(
        "/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    )
    assert me.json()["role"] == "admin"

    again = await invoke(
        [
            "create",
            "--email",
            f"{name}@example.com",
            "--username",
            unique(),
            "--password",
            PASSWORD,
        ],
    )
    assert again.exit_code == 1 and "email already registered" in again.output
    short = await invoke(
        ["create", "--email", "x@example.com", "--username", unique(), "--password", "short"],
    )
    assert short.exit_code == 2


async def test_admin_audit_endpoints(
    client: httpx.AsyncClient, admin: Account, user: Account, api_settings: Settings
) -> None:
    assert_problem(await client.get("/admin/audit", headers=user.auth), 403, "forbidden")
    assert_problem(await client.get("/admin/audit/verify"), 401, "unauthorized")
    from tests.api.audit.audittest import drain

    await drain(api_settings.audit_key)  # the two newest events are sealed, in order
    first = await client.get("/admin/audit", params={"limit": 2}, headers=admin.auth)
    assert first.status_code == 200
    page = first.json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    assert page["items"][0]["id"] > page["items"][1]["id"]
    newer, older = page["items"]
    assert newer["hash"] and older["hash"], "sealed events show their seal"
    if newer["seq"] == older["seq"] + 1:  # adjacent in the chain: linked
        assert newer["prev_hash"] == older["hash"]
    second = await client.get(
        "/admin/audit", params={"limit": 2, "cursor": page["next_cursor"]}, headers=admin.auth
    )
    assert second.json()["items"][0]["id"] < page["items"][1]["id"]
    assert_problem(
        await client.get("/admin/audit", params={"cursor": "zz"}, headers=admin.auth),
        422,
        "validation_error",
    )
    verify = await client.get("/admin/audit/verify", headers=admin.auth)
    assert verify.status_code == 200
    assert verify.json()["ok"] is True and verify.json()["first_bad_id"] is None, verify.json()


async def test_real_uvicorn_serves_the_app(platform: Any) -> None:
    """The stack's way of running the API (``uvicorn api.web.app:create_app --factory``)."""
    platform.require("api")
    base = f"http://{platform.settings.api_host}:{platform.settings.api_port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        assert (await http.get("/api/v1/healthz")).status_code == 200
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/api/v1/openapi.json")).status_code == 200
        r = await http.post("/api/v1/auth/register", json={"email": "bad"})
        assert_problem(r, 422, "validation_error")
        ready = await http.get("/api/v1/readyz")
        assert ready.status_code in (200, 503)
