"""OpenID Connect sign-in, driven end to end against a real provider (npm oidc-provider).

Each test walks the whole flow as a user would: ``/authorize`` redirects to the
provider, a browser signs in through its login and consent forms, the provider
sends it back to our callback with a code, and the API exchanges that code (PKCE),
verifies the ID token against the provider's JWKS and answers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from api.core.cache import get_redis
from api.oauth.handshake import state_key
from api.oauth.providers import callback_url
from ece.settings import Settings
from ops.stack.base import free_port
from ops.stack.supervisor import Platform
from tests.support.apitest import PASSWORD, Db, assert_problem, register_and_login, unique
from tests.support.oidcprovider import API_BASE, APP_REDIRECT, Browser, OidcProvider
from tests.support.oidcprovider import oidc_provider as oidc_provider  # noqa: F401 (fixture)


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _api_path(url: str) -> str:
    """An absolute callback URL as a path for the in-process client (base ``API_BASE``)."""
    assert url.startswith(API_BASE), url
    return url[len(API_BASE):]


async def _authorize(client: httpx.AsyncClient, provider: str = "dev", **params: str) -> str:
    r = await client.get(f"/auth/oauth/{provider}/authorize", params=params)
    assert r.status_code == 302, r.text
    return r.headers["location"]


async def _callback_for(
    client: httpx.AsyncClient, login: str, provider: str = "dev", **params: str
) -> str:
    """The provider's redirect back to us after ``login`` signed in (not yet called)."""
    location = await _authorize(client, provider, **params)
    async with Browser() as browser:
        return await browser.sign_in(location, login)


async def _sign_in(client: httpx.AsyncClient, login: str, provider: str = "dev") -> httpx.Response:
    return await client.get(_api_path(await _callback_for(client, login, provider)))


async def _me(client: httpx.AsyncClient, tokens: dict[str, Any]) -> dict[str, Any]:
    r = await client.get("/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_the_configured_providers_are_listed(
    client: httpx.AsyncClient, oidc_provider: OidcProvider
) -> None:
    r = await client.get("/auth/oauth/providers")
    assert r.status_code == 200, r.text
    assert {"name": "dev", "display_name": "Dev OpenID"} in r.json()


async def test_authorize_sends_pkce_state_and_nonce_kept_server_side(
    client: httpx.AsyncClient, oidc_provider: OidcProvider
) -> None:
    location = await _authorize(client)
    assert location.startswith(f"{oidc_provider.issuer}/auth?")
    q = _query(location)
    assert q["response_type"] == "code" and q["client_id"] == "ece-test"
    assert q["redirect_uri"] == f"{API_BASE}/auth/oauth/dev/callback"
    assert q["code_challenge_method"] == "S256"
    assert "openid" in q["scope"].split() and len(q["nonce"]) >= 32
    stored = json.loads(await get_redis().get(state_key(q["state"])))
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(stored["verifier"].encode()).digest()).rstrip(b"=").decode()
    assert challenge == q["code_challenge"] and stored["nonce"] == q["nonce"]
    assert 0 < await get_redis().ttl(state_key(q["state"])) <= 600


async def test_first_sign_in_creates_the_user_and_the_second_finds_it(
    client: httpx.AsyncClient, oidc_provider: OidcProvider, db: Db
) -> None:
    login = unique("carol")
    r = await _sign_in(client, login)
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert tokens["token_type"] == "bearer" and tokens["refresh_token"]
    me = await _me(client, tokens)
    assert me["email"] == f"{login}@oidc.example.com" and me["custody_address"]
    r = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200, r.text  # a real session, as from the password login

    again = await _sign_in(client, login)  # another browser, same provider account
    assert again.status_code == 200, again.text
    assert (await _me(client, again.json()))["id"] == me["id"]
    assert db.value("SELECT count(*) FROM users WHERE email = %s", me["email"]) == 1
    assert db.rows("SELECT provider, subject FROM oauth_identities WHERE user_id = %s",
                   uuid.UUID(me["id"])) == [("dev", login)]


async def test_a_replayed_callback_or_code_is_refused(
    client: httpx.AsyncClient, oidc_provider: OidcProvider
) -> None:
    callback = await _callback_for(client, unique("dave"))
    assert (await client.get(_api_path(callback))).status_code == 200
    assert_problem(await client.get(_api_path(callback)), 401, "invalid_state")
    # The same code under a fresh, valid state: the provider refuses a used code.
    fresh_state = _query(await _authorize(client))["state"]
    code = _query(callback)["code"]
    r = await client.get("/auth/oauth/dev/callback", params={"code": code, "state": fresh_state})
    assert_problem(r, 401, "invalid_code")


async def test_a_state_we_never_issued_is_refused(
    client: httpx.AsyncClient, oidc_provider: OidcProvider, db: Db
) -> None:
    callback = await _callback_for(client, login := unique("erin"))
    r = await client.get("/auth/oauth/dev/callback",
                         params={"code": _query(callback)["code"], "state": "forged-state"})
    assert_problem(r, 401, "invalid_state")
    assert db.value("SELECT count(*) FROM users WHERE email = %s", f"{login}@oidc.example.com") == 0


async def test_an_id_token_with_another_nonce_is_refused(
    client: httpx.AsyncClient, oidc_provider: OidcProvider, db: Db
) -> None:
    location = await _authorize(client)
    key = state_key(_query(location)["state"])
    stored = json.loads(await get_redis().get(key))
    stored["nonce"] = "not-the-nonce-the-provider-saw"
    await get_redis().set(key, json.dumps(stored), ex=600)
    login = unique("frank")
    async with Browser() as browser:
        callback = await browser.sign_in(location, login)
    assert_problem(await client.get(_api_path(callback)), 401, "nonce_mismatch")
    assert db.value("SELECT count(*) FROM users WHERE email = %s", f"{login}@oidc.example.com") == 0
    assert db.value("SELECT count(*) FROM audit_events WHERE action = 'auth.login_failed' "
                    "AND details->>'reason' = 'nonce_mismatch'") >= 1


async def test_an_expired_id_token_is_refused(
    client: httpx.AsyncClient, oidc_provider: OidcProvider, db: Db
) -> None:
    login = unique("gina")
    r = await _sign_in(client, login, provider="dev-expiring")
    assert_problem(r, 401, "id_token_expired")
    assert db.value("SELECT count(*) FROM users WHERE email = %s", f"{login}@oidc.example.com") == 0


async def test_an_email_of_an_existing_account_is_not_merged(
    client: httpx.AsyncClient, oidc_provider: OidcProvider, db: Db
) -> None:
    login = unique("hank")
    r = await client.post("/auth/register", json={
        "email": f"{login}@oidc.example.com", "username": login, "password": PASSWORD})
    assert r.status_code == 201, r.text
    before = db.value("SELECT count(*) FROM users")
    assert_problem(await _sign_in(client, login), 409, "account_exists")
    assert db.value("SELECT count(*) FROM users") == before
    r = await client.post("/auth/login", json={"login": login, "password": PASSWORD})
    assert r.status_code == 200, r.text  # the owner's account is untouched
    assert db.value("SELECT count(*) FROM oauth_identities WHERE subject = %s", login) == 0


async def test_an_unverified_email_cannot_create_an_account(
    client: httpx.AsyncClient, oidc_provider: OidcProvider, db: Db
) -> None:
    login = unique("unverified")
    assert_problem(await _sign_in(client, login), 403, "email_not_verified")
    assert db.value("SELECT count(*) FROM users WHERE email = %s", f"{login}@oidc.example.com") == 0


async def test_a_signed_in_user_links_a_provider_account_then_signs_in_with_it(
    client: httpx.AsyncClient, oidc_provider: OidcProvider
) -> None:
    user = await register_and_login(client)
    r = await client.post("/me/identities/dev", headers=user.auth)
    assert r.status_code == 200, r.text
    login = unique("ivy")
    async with Browser() as browser:
        callback = await browser.sign_in(r.json()["authorization_url"], login)
    r = await client.get(_api_path(callback))
    assert r.status_code == 201, r.text
    assert r.json()["provider"] == "dev" and r.json()["subject"] == login
    r = await client.get("/me/identities", headers=user.auth)
    assert [(i["provider"], i["subject"]) for i in r.json()["items"]] == [("dev", login)]

    signed_in = await _sign_in(client, login)
    assert signed_in.status_code == 200, signed_in.text
    assert (await _me(client, signed_in.json()))["id"] == user.id

    other = await register_and_login(client)  # the same provider account for someone else
    r = await client.post("/me/identities/dev", headers=other.auth)
    async with Browser() as browser:
        callback = await browser.sign_in(r.json()["authorization_url"], login)
    assert_problem(await client.get(_api_path(callback)), 409, "identity_in_use")


async def _linked(client: httpx.AsyncClient, user: Any, login: str) -> None:
    """``login`` at the dev provider, linked to ``user`` through the real flow."""
    r = await client.post("/me/identities/dev", headers=user.auth)
    async with Browser() as browser:
        callback = await browser.sign_in(r.json()["authorization_url"], login)
    assert (await client.get(_api_path(callback))).status_code == 201


async def _unlink(client: httpx.AsyncClient, auth: dict[str, str], provider: str = "dev",
                  **body: str) -> httpx.Response:
    return await client.request("DELETE", f"/me/identities/{provider}", headers=auth,
                                json=body or None)


async def test_unlinking_never_leaves_an_account_without_a_way_in(
    client: httpx.AsyncClient, oidc_provider: OidcProvider, db: Db
) -> None:
    user = await register_and_login(client)
    login = unique("jo")
    await _linked(client, user, login)
    mine = "SELECT count(*) FROM oauth_identities WHERE user_id = %s"
    assert_problem(await _unlink(client, user.auth), 409, "last_sign_in_method")
    assert_problem(await _unlink(client, user.auth, password="not the password"),
                   401, "invalid_password")
    assert db.value(mine, user.id) == 1  # neither refusal removed it
    assert db.value("SELECT count(*) FROM audit_events WHERE actor_id = %s AND action = "
                    "'auth.login_failed' AND details->>'during' = 'identity.unlink'",
                    user.id) == 1
    r = await _unlink(client, user.auth, password=PASSWORD)
    assert r.status_code == 204, r.text
    assert (await client.get("/me/identities", headers=user.auth)).json()["items"] == []
    assert db.value("SELECT count(*) FROM audit_events WHERE actor_id = %s AND action = "
                    "'identity.unlinked'", user.id) == 1
    assert_problem(await _unlink(client, user.auth, password=PASSWORD), 404, "not_found")
    again = await _sign_in(client, login)  # the provider account no longer reaches it
    assert again.status_code == 200, again.text
    assert (await _me(client, again.json()))["id"] != user.id

    # An account a provider sign-in created has no password anyone knows: it keeps
    # its last identity, whatever password is tried.
    created = await _sign_in(client, unique("kai"))
    tokens = created.json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    me = await _me(client, tokens)
    assert_problem(await _unlink(client, auth), 409, "last_sign_in_method")
    assert_problem(await _unlink(client, auth, password=PASSWORD), 401, "invalid_password")
    assert db.value(mine, me["id"]) == 1
    assert_problem(await _unlink(client, user.auth, provider="dev"), 404, "not_found")


async def test_two_removals_at_once_keep_one_identity(
    client: httpx.AsyncClient, oidc_provider: OidcProvider, db: Db
) -> None:
    """Two identities, both removed concurrently without a password: the user row lock
    makes the second removal see it would be the last, so exactly one goes."""
    created = await _sign_in(client, unique("lee"))
    tokens = created.json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    me = await _me(client, tokens)
    db.rows("INSERT INTO oauth_identities (id, provider, subject, user_id, email, created_at) "
            "VALUES (gen_random_uuid(), 'dev-expiring', %s, %s, NULL, now()) RETURNING id",
            unique("sub"), me["id"])
    for _ in range(5):
        answers = await asyncio.gather(_unlink(client, auth, "dev"),
                                       _unlink(client, auth, "dev-expiring"))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [204, 409], [a.text for a in answers]
        assert db.value("SELECT count(*) FROM oauth_identities WHERE user_id = %s",
                        me["id"]) == 1
        gone = "dev" if answers[0].status_code == 204 else "dev-expiring"
        db.rows("INSERT INTO oauth_identities (id, provider, subject, user_id, email, "
                "created_at) VALUES (gen_random_uuid(), %s, %s, %s, NULL, now()) RETURNING id",
                gone, unique("sub"), me["id"])


async def test_an_allowed_redirect_gets_a_one_time_code(
    client: httpx.AsyncClient, oidc_provider: OidcProvider
) -> None:
    callback = await _callback_for(client, unique("jane"), redirect_uri=APP_REDIRECT,
                                   state="app-123")
    r = await client.get(_api_path(callback))
    assert r.status_code == 302, r.text
    target = r.headers["location"]
    assert target.startswith(f"{APP_REDIRECT}?") and "access_token" not in target
    q = _query(target)
    assert q["state"] == "app-123"
    r = await client.post("/auth/oauth/exchange", json={"code": q["code"]})
    assert r.status_code == 200, r.text
    assert (await _me(client, r.json()))["email"].endswith("@oidc.example.com")
    again = await client.post("/auth/oauth/exchange", json={"code": q["code"]})
    assert_problem(again, 401, "invalid_code")


async def test_unknown_provider_and_foreign_redirect_uri(
    client: httpx.AsyncClient, oidc_provider: OidcProvider
) -> None:
    assert_problem(await client.get("/auth/oauth/nope/authorize"), 404, "not_found")
    assert_problem(await client.get("/auth/oauth/nope/callback?code=a&state=b"), 404, "not_found")
    user = await register_and_login(client)
    assert_problem(await client.post("/me/identities/nope", headers=user.auth), 404, "not_found")
    r = await client.get("/auth/oauth/dev/authorize",
                         params={"redirect_uri": "https://evil.example/steal"})
    assert_problem(r, 422, "redirect_uri_not_allowed")
    assert_problem(await client.post("/me/identities/dev"), 401, "unauthorized")


def test_the_stack_part_serves_the_seeded_client_with_pkce_required(tmp_path: Path) -> None:
    """``ece up -p oidc``: the part starts the provider with client ``ece-local``."""
    settings = Settings(data_dir=tmp_path, oidc_dev_url=f"http://127.0.0.1:{free_port()}")
    platform = Platform(settings)
    try:
        platform.require("oidc")
        part = platform.part("oidc")
        ok, detail = part.health()
        assert ok, detail
        request = {"client_id": "ece-local", "response_type": "code", "scope": "openid",
                   "redirect_uri": callback_url(settings, "local"), "state": "s", "nonce": "n"}
        with_pkce = {**request, "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                     "code_challenge_method": "S256"}
        r = httpx.get(f"{part.url}/auth", params=with_pkce)
        assert r.status_code == 303 and r.headers["location"].startswith("/interaction/"), r.text
        r = httpx.get(f"{part.url}/auth", params=request)  # no PKCE: refused to the client
        assert r.status_code == 303 and "error=invalid_request" in r.headers["location"]
    finally:
        platform.stop()
    assert part.health() == (True, "off (optional: `ece up -p api -p oidc` starts it)")
