"""GET/POST /notifications and /me/push-subscriptions against the API process."""

import base64
import os
import uuid
from typing import Any

import httpx

from ece.settings import Settings
from tests.support.apitest import Account, assert_problem, register_and_login
from tests.support.notifytest import produce


def _seqs(body: dict[str, Any]) -> list[int]:
    return [n["seq"] for n in body["items"]]


async def test_pages_newest_first_and_after_seq_oldest_first(
    live: httpx.AsyncClient, settings: Settings
) -> None:
    me = await register_and_login(live)
    stored = [produce(settings, me.id, kind="outbid") for _ in range(5)]
    assert [s.seq for s in stored] == [1, 2, 3, 4, 5]

    r = await live.get("/notifications", params={"limit": 2}, headers=me.auth)
    assert r.status_code == 200, r.text
    first = r.json()
    assert _seqs(first) == [5, 4]
    item = first["items"][0]
    assert item == {"id": stored[4].id, "seq": 5, "kind": "outbid", "payload": stored[4].payload,
                    "created_at": item["created_at"], "read_at": None}
    pages = [first]
    while pages[-1]["next_cursor"]:
        r = await live.get("/notifications", headers=me.auth,
                           params={"limit": 2, "cursor": pages[-1]["next_cursor"]})
        pages.append(r.json())
    assert [_seqs(p) for p in pages] == [[5, 4], [3, 2], [1]]

    r = await live.get("/notifications", params={"after_seq": 2}, headers=me.auth)
    assert _seqs(r.json()) == [3, 4, 5]
    r = await live.get("/notifications", params={"after_seq": 2, "limit": 2}, headers=me.auth)
    again = await live.get("/notifications", headers=me.auth, params={
        "after_seq": 2, "limit": 2, "cursor": r.json()["next_cursor"]})
    assert (_seqs(r.json()), _seqs(again.json())) == ([3, 4], [5])

    # A cursor of one order is refused by the other, not misread.
    r = await live.get("/notifications", headers=me.auth,
                       params={"cursor": first["next_cursor"], "after_seq": 0})
    assert_problem(r, 422, "validation_error")
    r = await live.get("/notifications", params={"after_seq": -1}, headers=me.auth)
    assert_problem(r, 422, "validation_error")


async def test_unread_read_and_read_all(live: httpx.AsyncClient, settings: Settings) -> None:
    me = await register_and_login(live)
    stored = [produce(settings, me.id) for _ in range(4)]

    r = await live.get("/notifications/unread-count", headers=me.auth)
    assert r.json() == {"unread": 4}
    for _ in range(2):  # reading twice is fine
        r = await live.post(f"/notifications/{stored[1].id}/read", headers=me.auth)
        assert r.status_code == 204, r.text
    r = await live.get("/notifications", params={"unread": "true"}, headers=me.auth)
    assert _seqs(r.json()) == [4, 3, 1]
    r = await live.get("/notifications/unread-count", headers=me.auth)
    assert r.json() == {"unread": 3}
    r = await live.get("/notifications", params={"after_seq": 1, "limit": 1}, headers=me.auth)
    assert r.json()["items"][0]["read_at"] is not None

    r = await live.post("/notifications/read-all", headers=me.auth)
    assert r.status_code == 204
    r = await live.get("/notifications/unread-count", headers=me.auth)
    assert r.json() == {"unread": 0}
    r = await live.get("/notifications", params={"unread": "true"}, headers=me.auth)
    assert r.json()["items"] == []


async def test_someone_elses_notification_is_not_found(
    live: httpx.AsyncClient, settings: Settings
) -> None:
    owner = await register_and_login(live)
    other = await register_and_login(live)
    theirs = produce(settings, owner.id)

    r = await live.post(f"/notifications/{theirs.id}/read", headers=other.auth)
    assert_problem(r, 404, "not_found")
    r = await live.post(f"/notifications/{uuid.uuid4()}/read", headers=other.auth)
    assert_problem(r, 404, "not_found")
    r = await live.post("/notifications/read-all", headers=other.auth)
    assert r.status_code == 204
    r = await live.get("/notifications", headers=other.auth)
    assert r.json()["items"] == []
    r = await live.get("/notifications/unread-count", headers=owner.auth)
    assert r.json() == {"unread": 1}  # untouched by the other user


async def test_bad_or_missing_token_is_401(live: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-jwt"}):
        for path in ("/notifications", "/notifications/unread-count", "/me/push-subscriptions"):
            assert_problem(await live.get(path, headers=headers), 401, "unauthorized")
        r = await live.post("/notifications/read-all", headers=headers)
        assert_problem(r, 401, "unauthorized")


# --- Web Push subscriptions -------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def subscription(endpoint: str | None = None) -> dict[str, Any]:
    return {
        "endpoint": endpoint or f"https://push.example.com/send/{uuid.uuid4().hex}",
        "expirationTime": None,
        "keys": {"p256dh": _b64(b"\x04" + os.urandom(64)), "auth": _b64(os.urandom(16))},
    }


async def _subs(live: httpx.AsyncClient, account: Account) -> list[dict[str, Any]]:
    r = await live.get("/me/push-subscriptions", headers=account.auth)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_vapid_public_key_is_an_application_server_key(live: httpx.AsyncClient) -> None:
    r = await live.get("/push/vapid-public-key")
    assert r.status_code == 200, r.text
    raw = base64.urlsafe_b64decode(r.json()["public_key"] + "==")
    assert len(raw) == 65 and raw[0] == 4  # an uncompressed P-256 point
    assert (await live.get("/push/vapid-public-key")).json() == r.json()  # stable


async def test_subscribe_is_idempotent_per_endpoint_and_owned(live: httpx.AsyncClient) -> None:
    me = await register_and_login(live)
    other = await register_and_login(live)
    body = subscription()

    r = await live.post("/me/push-subscriptions", json=body, headers=me.auth)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["endpoint"] == body["endpoint"] and set(created) == {"id", "endpoint",
                                                                        "created_at"}
    r = await live.post("/me/push-subscriptions", json=body, headers=me.auth)
    assert r.status_code == 200 and r.json() == created
    assert [s["id"] for s in await _subs(live, me)] == [created["id"]]

    r = await live.delete(f"/me/push-subscriptions/{created['id']}", headers=other.auth)
    assert_problem(r, 404, "not_found")
    assert await _subs(live, other) == []

    # The same browser endpoint registered by another account moves to that account.
    r = await live.post("/me/push-subscriptions", json=body, headers=other.auth)
    assert r.status_code == 201, r.text
    moved = r.json()
    assert await _subs(live, me) == []
    assert [s["id"] for s in await _subs(live, other)] == [moved["id"]]

    r = await live.delete(f"/me/push-subscriptions/{moved['id']}", headers=other.auth)
    assert r.status_code == 204
    assert await _subs(live, other) == []
    r = await live.delete(f"/me/push-subscriptions/{moved['id']}", headers=other.auth)
    assert_problem(r, 404, "not_found")


async def test_subscription_bodies_are_validated(live: httpx.AsyncClient) -> None:
    me = await register_and_login(live)
    loopback = subscription("http://127.0.0.1:8090/push/abc")  # the local push service (test env)
    r = await live.post("/me/push-subscriptions", json=loopback, headers=me.auth)
    assert r.status_code == 201, r.text

    bad: list[dict[str, Any]] = [
        subscription("http://push.example.com/send/x"),  # plain http off loopback
        subscription("ftp://push.example.com/x"),
        subscription("https:///nohost"),
        subscription("https://user:pw@push.example.com/x"),
        {**subscription(), "keys": {"p256dh": _b64(b"\x02" + os.urandom(64)),
                                    "auth": _b64(os.urandom(16))}},
        {**subscription(), "keys": {"p256dh": _b64(b"\x04" + os.urandom(64)),
                                    "auth": _b64(os.urandom(8))}},
        {**subscription(), "keys": {"p256dh": "!!", "auth": _b64(os.urandom(16))}},
        {"endpoint": "https://push.example.com/x"},
    ]
    for body in bad:
        r = await live.post("/me/push-subscriptions", json=body, headers=me.auth)
        assert_problem(r, 422, "validation_error")
    assert len(await _subs(live, me)) == 1
