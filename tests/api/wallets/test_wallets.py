"""Sign-In-With-Solana and wallet linking, with real ed25519 keys (solders) against the
real database: every refusal has its contract code and leaves no trace except the
audit event that failed logins must leave."""

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from solders.keypair import Keypair

from tests.support.apitest import Account, Db, assert_problem, register_and_login

# Own client address: failed logins here must not eat the lockout budget of
# 127.0.0.1, which other API tests share.
CLIENT_IP = "198.51.100.21"


@pytest.fixture(scope="module")
async def wclient(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(CLIENT_IP, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1") as c:
        yield c


def counts(db: Db) -> dict[str, int]:
    tables = ("wallets", "wallet_challenges", "refresh_sessions", "audit_events", "users")
    return {t: int(db.value(f"SELECT count(*) FROM {t}")) for t in tables}


async def challenge(client: httpx.AsyncClient, keypair: Keypair) -> dict[str, Any]:
    r = await client.post("/auth/wallet/challenge", json={"address": str(keypair.pubkey())})
    assert r.status_code == 200, r.text
    return r.json()


def sign(keypair: Keypair, message: str) -> str:
    return str(keypair.sign_message(message.encode()))


async def signed(client: httpx.AsyncClient, keypair: Keypair) -> dict[str, str]:
    """A body proving control of ``keypair`` over a fresh challenge (contract shape)."""
    ch = await challenge(client, keypair)
    return {"address": str(keypair.pubkey()), "signature": sign(keypair, ch["message"])}


async def link(client: httpx.AsyncClient, account: Account, keypair: Keypair) -> httpx.Response:
    body = await signed(client, keypair)
    return await client.post("/me/wallets", json=body, headers=account.auth)


def audit_actions(db: Db, address: str) -> list[tuple[str, Any]]:
    return [
        (r[0], r[1].get("reason"))
        for r in db.rows(
            "SELECT action, details FROM audit_events WHERE details->>'address' = %s ORDER BY id",
            address,
        )
    ]


async def test_link_then_sign_in_with_the_wallet(wclient: httpx.AsyncClient, db: Db) -> None:
    account = await register_and_login(wclient)
    keypair = Keypair()
    address = str(keypair.pubkey())

    ch = await challenge(wclient, keypair)
    message, nonce = ch["message"], ch["nonce"]
    expires_at = datetime.fromisoformat(ch["expires_at"])
    assert timedelta(minutes=4, seconds=50) < expires_at - datetime.now(UTC) <= timedelta(minutes=5)
    lines = message.split("\n")
    assert lines[0].endswith(" wants you to sign in with your Solana account:")
    assert lines[1] == address
    for field in ("URI", "Version", "Chain ID", "Nonce", "Issued At", "Expiration Time"):
        assert re.search(rf"^{field}: \S+$", message, re.M), field
    assert f"Nonce: {nonce}" in lines
    assert re.fullmatch(r"[A-Za-z0-9]{16,}", nonce)

    r = await wclient.post(
        "/me/wallets",
        json={"address": address, "signature": sign(keypair, message)},
        headers=account.auth,
    )
    assert r.status_code == 201, r.text
    wallet = r.json()
    assert wallet["address"] == address and wallet["user_id"] == account.id

    r = await wclient.get("/me/wallets", headers=account.auth)
    assert r.status_code == 200
    assert [w["address"] for w in r.json()["items"]] == [address]
    assert r.json()["next_cursor"] is None

    r = await wclient.post("/auth/wallet/login", json=await signed(wclient, keypair))
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] > 0
    me = await wclient.get("/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200 and me.json()["id"] == account.id
    # The refresh token rotates like one from a password login.
    r = await wclient.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200, r.text

    assert audit_actions(db, address) == [("wallet.link", None), ("auth.wallet_login", None)]
    actors = db.rows(
        "SELECT DISTINCT actor_id::text, ip FROM audit_events WHERE details->>'address' = %s",
        address,
    )
    assert actors == [(account.id, CLIENT_IP)]


async def test_login_with_an_explicit_nonce_among_several_open_challenges(
    wclient: httpx.AsyncClient,
) -> None:
    account = await register_and_login(wclient)
    keypair = Keypair()
    assert (await link(wclient, account, keypair)).status_code == 201
    older = await challenge(wclient, keypair)
    await challenge(wclient, keypair)  # a newer one the wallet did not sign
    body = {"address": str(keypair.pubkey()), "signature": sign(keypair, older["message"])}
    r = await wclient.post("/auth/wallet/login", json={**body, "nonce": older["nonce"]})
    assert r.status_code == 200, r.text


async def test_reused_signature_is_refused(wclient: httpx.AsyncClient, db: Db) -> None:
    account = await register_and_login(wclient)
    keypair = Keypair()
    assert (await link(wclient, account, keypair)).status_code == 201
    body = await signed(wclient, keypair)
    assert (await wclient.post("/auth/wallet/login", json=body)).status_code == 200
    before = counts(db)

    r = await wclient.post("/auth/wallet/login", json=body)

    assert_problem(r, 401, "unauthorized")
    after = counts(db)
    assert after["refresh_sessions"] == before["refresh_sessions"]
    assert after["audit_events"] == before["audit_events"] + 1
    assert audit_actions(db, body["address"])[-1] == ("auth.wallet_login_failed", "nonce_reused")


async def test_concurrent_uses_of_one_signature_sign_in_once(
    wclient: httpx.AsyncClient, db: Db
) -> None:
    account = await register_and_login(wclient)
    keypair = Keypair()
    assert (await link(wclient, account, keypair)).status_code == 201
    body = await signed(wclient, keypair)
    before = counts(db)

    answers = await asyncio.gather(
        *(wclient.post("/auth/wallet/login", json=body) for _ in range(4))
    )

    assert sorted(r.status_code for r in answers) == [200, 401, 401, 401]
    assert counts(db)["refresh_sessions"] == before["refresh_sessions"] + 1


async def test_expired_challenge_is_refused(wclient: httpx.AsyncClient, db: Db) -> None:
    account = await register_and_login(wclient)
    keypair = Keypair()
    assert (await link(wclient, account, keypair)).status_code == 201
    ch = await challenge(wclient, keypair)
    db.rows(
        "UPDATE wallet_challenges SET expires_at = now() - interval '1 second' "
        "WHERE nonce = %s RETURNING nonce",
        ch["nonce"],
    )
    before = counts(db)
    body = {"address": str(keypair.pubkey()), "signature": sign(keypair, ch["message"])}

    r = await wclient.post("/auth/wallet/login", json=body)

    body_json = assert_problem(r, 401, "unauthorized")
    assert "expired" in body_json["detail"]
    assert counts(db)["refresh_sessions"] == before["refresh_sessions"]
    assert audit_actions(db, body["address"])[-1] == (
        "auth.wallet_login_failed",
        "challenge_expired",
    )
    assert db.value("SELECT used_at FROM wallet_challenges WHERE nonce = %s", ch["nonce"]) is None
    # Linking over an expired challenge is refused too, and writes nothing at all.
    before = counts(db)
    r = await wclient.post("/me/wallets", json=body, headers=account.auth)
    assert_problem(r, 401, "unauthorized")
    assert counts(db) == before


async def test_wrong_signature_is_refused(wclient: httpx.AsyncClient, db: Db) -> None:
    account = await register_and_login(wclient)
    keypair, intruder = Keypair(), Keypair()
    assert (await link(wclient, account, keypair)).status_code == 201
    ch = await challenge(wclient, keypair)
    address = str(keypair.pubkey())
    before = counts(db)
    wrong = [
        sign(intruder, ch["message"]),  # someone else's key
        sign(keypair, ch["message"] + " "),  # other bytes than the issued message
        sign(keypair, ch["message"].replace("Nonce: ", "Nonce: 0")),  # altered nonce
    ]

    for signature in wrong:
        r = await wclient.post(
            "/auth/wallet/login", json={"address": address, "signature": signature}
        )
        assert_problem(r, 401, "unauthorized")

    after = counts(db)
    assert after["refresh_sessions"] == before["refresh_sessions"]
    assert after["audit_events"] == before["audit_events"] + len(wrong)
    assert audit_actions(db, address)[-1] == ("auth.wallet_login_failed", "bad_signature")
    # The genuine signature still works: failures did not consume the challenge.
    r = await wclient.post(
        "/auth/wallet/login", json={"address": address, "signature": sign(keypair, ch["message"])}
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "address",
    [
        "0OIl0OIl0OIl0OIl0OIl0OIl0OIl0OIl0OIl0OIl",  # characters outside base58
        "3yZe7d",  # too short
        "1" * 44,  # base58 of the wrong length
        "6dz74VTPZvpFubLvdG9sHsr2rktU89JZ5GCN1CfdcJCe",  # a PDA: 32 bytes, off curve
        "",
    ],
)
async def test_malformed_address_is_a_validation_error(
    wclient: httpx.AsyncClient, db: Db, address: str
) -> None:
    account = await register_and_login(wclient)
    good_sig = str(Keypair().sign_message(b"x"))
    before = counts(db)

    answers = [
        await wclient.post("/auth/wallet/challenge", json={"address": address}),
        await wclient.post("/auth/wallet/login", json={"address": address, "signature": good_sig}),
        await wclient.post(
            "/me/wallets", json={"address": address, "signature": good_sig}, headers=account.auth
        ),
    ]

    for r in answers:
        assert_problem(r, 422, "validation_error")
    assert counts(db) == before


@pytest.mark.parametrize("signature", ["0OIl" * 22, "3yZe7d", "1" * 88, ""])
async def test_malformed_signature_is_a_validation_error(
    wclient: httpx.AsyncClient, db: Db, signature: str
) -> None:
    keypair = Keypair()
    await challenge(wclient, keypair)
    before = counts(db)

    r = await wclient.post(
        "/auth/wallet/login", json={"address": str(keypair.pubkey()), "signature": signature}
    )

    assert_problem(r, 422, "validation_error")
    assert counts(db) == before


async def test_unknown_wallet_is_not_linked(wclient: httpx.AsyncClient, db: Db) -> None:
    keypair = Keypair()
    body = await signed(wclient, keypair)
    before = counts(db)

    r = await wclient.post("/auth/wallet/login", json=body)

    assert_problem(r, 401, "wallet_not_linked")
    after = counts(db)
    assert after["refresh_sessions"] == before["refresh_sessions"]
    assert after["wallets"] == before["wallets"]
    assert audit_actions(db, body["address"]) == [("auth.wallet_login_failed", "wallet_not_linked")]
    # The verified signature consumed its challenge: linking later cannot revive it.
    r = await wclient.post("/auth/wallet/login", json=body)
    assert_problem(r, 401, "unauthorized")


async def test_wallet_linked_to_someone_else_is_a_conflict(
    wclient: httpx.AsyncClient, db: Db
) -> None:
    alice = await register_and_login(wclient)
    mallory = await register_and_login(wclient)
    keypair = Keypair()
    assert (await link(wclient, alice, keypair)).status_code == 201
    before = counts(db)

    r = await link(wclient, mallory, keypair)
    assert_problem(r, 409, "conflict")
    r2 = await link(wclient, alice, keypair)  # linking twice to oneself is a conflict too
    assert_problem(r2, 409, "conflict")

    after = counts(db)
    assert after["wallets"] == before["wallets"]
    assert after["audit_events"] == before["audit_events"]
    r = await wclient.get("/me/wallets", headers=mallory.auth)
    assert r.json()["items"] == []
    # The wallet still signs in as its owner.
    r = await wclient.post("/auth/wallet/login", json=await signed(wclient, keypair))
    assert r.status_code == 200
    me = await wclient.get("/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
    assert me.json()["id"] == alice.id


async def test_concurrent_links_of_one_address_link_it_once(
    wclient: httpx.AsyncClient, db: Db
) -> None:
    users = [await register_and_login(wclient) for _ in range(3)]
    keypair = Keypair()
    bodies = [await signed(wclient, keypair) for _ in users]

    answers = await asyncio.gather(
        *(
            wclient.post("/me/wallets", json=body, headers=u.auth)
            for u, body in zip(users, bodies, strict=True)
        )
    )

    assert sorted(r.status_code for r in answers) == [201, 409, 409]
    assert db.value("SELECT count(*) FROM wallets WHERE address = %s", str(keypair.pubkey())) == 1


async def test_wallet_routes_need_a_user(wclient: httpx.AsyncClient) -> None:
    keypair = Keypair()
    assert_problem(await wclient.get("/me/wallets"), 401, "unauthorized")
    r = await wclient.post("/me/wallets", json=await signed(wclient, keypair))
    assert_problem(r, 401, "unauthorized")


async def test_unknown_fields_are_refused(wclient: httpx.AsyncClient) -> None:
    keypair = Keypair()
    r = await wclient.post(
        "/auth/wallet/challenge", json={"address": str(keypair.pubkey()), "user_id": "x"}
    )
    assert_problem(r, 422, "validation_error")
