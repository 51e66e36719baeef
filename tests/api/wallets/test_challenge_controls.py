"""Wallet challenges: bound to login or link, limited per client and address, a
configured domain in prod, and purged after they expire."""

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from solders.keypair import Keypair

from api.wallets import siws
from ece.settings import Settings, get_settings
from tests.support.apitest import Account, Db, assert_problem, register_and_login

_addresses = itertools.count(1)


@asynccontextmanager
async def fresh_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(f"192.0.2.{next(_addresses)}", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as c:
        yield c


async def challenge(
    c: httpx.AsyncClient, keypair: Keypair, purpose: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"address": str(keypair.pubkey())}
    if purpose is not None:
        body["purpose"] = purpose
    r = await c.post("/auth/wallet/challenge", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def signed(keypair: Keypair, ch: dict[str, Any]) -> dict[str, str]:
    return {
        "address": str(keypair.pubkey()),
        "signature": str(keypair.sign_message(ch["message"].encode())),
        "nonce": ch["nonce"],
    }


async def linked(c: httpx.AsyncClient) -> tuple[Account, Keypair]:
    account, keypair = await register_and_login(c), Keypair()
    ch = await challenge(c, keypair)
    assert ch["purpose"] == "link"  # the default for an address nobody linked
    r = await c.post("/me/wallets", json=signed(keypair, ch), headers=account.auth)
    assert r.status_code == 201, r.text
    return account, keypair


async def test_a_login_challenge_cannot_link_a_wallet(app: FastAPI, db: Db) -> None:
    async with fresh_client(app) as c:
        victim, mallory = await register_and_login(c), await register_and_login(c)
        keypair = Keypair()
        address = str(keypair.pubkey())
        ch = await challenge(c, keypair, "login")
        assert ch["purpose"] == "login" and siws.STATEMENTS["login"] in ch["message"]
        # The victim signed to sign in; the signature cannot link the wallet to anyone.
        for account in (mallory, victim):
            r = await c.post("/me/wallets", json=signed(keypair, ch), headers=account.auth)
            body = assert_problem(r, 401, "unauthorized")
            assert "sign in" in body["detail"]
        assert db.value("SELECT count(*) FROM wallets WHERE address = %s", address) == 0
        used = db.value("SELECT used_at FROM wallet_challenges WHERE nonce = %s", ch["nonce"])
        assert used is None


async def test_a_link_challenge_cannot_sign_in(app: FastAPI, db: Db) -> None:
    async with fresh_client(app) as c:
        account, keypair = await linked(c)
        ch = await challenge(c, keypair, "link")
        assert siws.STATEMENTS["link"] in ch["message"]
        r = await c.post("/auth/wallet/login", json=signed(keypair, ch))
        body = assert_problem(r, 401, "unauthorized")
        assert "link" in body["detail"]
        reason = db.value(
            "SELECT details->>'reason' FROM audit_events WHERE action = "
            "'auth.wallet_login_failed' AND details->>'address' = %s ORDER BY id DESC LIMIT 1",
            str(keypair.pubkey()),
        )
        assert reason == "wrong_purpose"
        # A login challenge (the default once linked) signs in.
        login_ch = await challenge(c, keypair)
        assert login_ch["purpose"] == "login"
        r = await c.post("/auth/wallet/login", json=signed(keypair, login_ch))
        assert r.status_code == 200, r.text


async def test_challenges_are_limited_per_address_and_per_client(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECE_RATE_LIMIT_CHALLENGE_ADDRESS", "3")
    monkeypatch.setenv("ECE_RATE_LIMIT_CHALLENGE_IP", "5")
    keypair = Keypair()
    async with fresh_client(app) as c, fresh_client(app) as other:
        for _ in range(3):
            await challenge(c, keypair)
        r = await c.post("/auth/wallet/challenge", json={"address": str(keypair.pubkey())})
        body = assert_problem(r, 429, "rate_limited")
        assert "wallet address" in body["detail"] and int(r.headers["Retry-After"]) >= 1
        # Per address: from anywhere.
        r = await other.post("/auth/wallet/challenge", json={"address": str(keypair.pubkey())})
        assert_problem(r, 429, "rate_limited")
        # Per client: refused ones did not count, two more addresses fit, then no more.
        for _ in range(2):
            await challenge(c, Keypair())
        r = await c.post("/auth/wallet/challenge", json={"address": str(Keypair().pubkey())})
        body = assert_problem(r, 429, "rate_limited")
        assert "client address" in body["detail"]
        await challenge(other, Keypair())


def test_prod_requires_a_configured_domain() -> None:
    prod = Settings(env="prod", siws_domain=None)
    with pytest.raises(RuntimeError, match="ECE_SIWS_DOMAIN"):
        siws.origin(prod)
    with pytest.raises(RuntimeError, match="ECE_SIWS_DOMAIN"):
        siws.require_domain(prod.model_copy(update={"siws_domain": "  "}))
    org = siws.origin(prod.model_copy(update={"siws_domain": "cards.example.com"}))
    assert (org.domain, org.uri) == ("cards.example.com", "https://cards.example.com/api/v1")
    dev = siws.origin(Settings(env="dev", siws_domain=None, api_host="127.0.0.1", api_port=8000))
    assert dev.domain == "127.0.0.1:8000"


def test_the_stack_refuses_to_start_the_api_without_a_domain_in_prod() -> None:
    from ops.stack.api import Api

    part = Api(get_settings().model_copy(update={"env": "prod", "siws_domain": None}))
    with pytest.raises(RuntimeError, match="ECE_SIWS_DOMAIN"):
        part.start()


async def test_expired_challenges_are_purged(app: FastAPI, db: Db) -> None:
    from api.workers.purgers import ChallengePurger

    async with fresh_client(app) as c:
        nonces = [(await challenge(c, Keypair()))["nonce"] for _ in range(3)]
    db.rows("UPDATE wallet_challenges SET expires_at = now() - interval '2 hours' "
            "WHERE nonce = %s RETURNING nonce", nonces[0])
    db.rows("UPDATE wallet_challenges SET expires_at = now() - interval '10 minutes' "
            "WHERE nonce = %s RETURNING nonce", nonces[1])
    await ChallengePurger(1.0).cycle()
    left = {r[0] for r in db.rows("SELECT nonce FROM wallet_challenges WHERE nonce = ANY(%s)",
                                   nonces)}
    # Long expired: gone. Recently expired (still reported as "expired") and live: kept.
    assert left == {nonces[1], nonces[2]}


def test_the_housekeeping_workers_include_the_challenge_purger() -> None:
    from api.workers.__main__ import build, parse_args

    names = {w.name for w in build(parse_args(["--only", "idempotency"]))}
    assert names == {"idempotency", "challenges"}
