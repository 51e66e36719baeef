"""Cards: admin writes, filters, cursor pagination, cache/ETag behaviour, bad input."""

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from ece.contracts import card_cache
from tests.support.apitest import (
    Account,
    Db,
    assert_problem,
    card_body,
    create_card,
    unique,
)


async def test_create_card_defaults_owner_to_admin_and_records_issue(
    client: httpx.AsyncClient, admin: Account, db: Db
) -> None:
    before = db.value("SELECT count(*) FROM audit_events")
    r = await client.post(
        "/cards",
        json=card_body(edition="First", attributes={"power": 9, "foil": True}),
        headers=admin.auth,
    )
    assert r.status_code == 201, r.text
    card = r.json()
    assert set(card) == set(card_cache.CARD_FIELDS)
    assert card["owner_id"] == admin.id
    assert card["status"] == "available"
    assert card["attributes"] == {"power": 9, "foil": True}
    assert card["image_url"] is None
    assert r.headers["etag"] == card_cache.etag(card["id"], 1)
    history = db.rows(
        "SELECT from_user_id, to_user_id, reason FROM card_history WHERE card_id = %s", card["id"]
    )
    assert [(h[0], str(h[1]), h[2]) for h in history] == [(None, admin.id, "issue")]
    assert db.value("SELECT count(*) FROM audit_events") == before + 1
    assert (
        db.value(
            "SELECT action FROM audit_events WHERE entity = 'card' AND entity_id = %s", card["id"]
        )
        == "card.issue"
    )


async def test_create_card_for_another_owner(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    card = await create_card(client, admin, owner_id=user.id)
    assert card["owner_id"] == user.id
    r = await client.get(f"/cards/{card['id']}/history")
    assert r.status_code == 200
    items = r.json()["items"]
    assert len(items) == 1 and items[0]["to_user_id"] == user.id
    assert items[0]["reason"] == "issue" and items[0]["from_user_id"] is None


async def test_non_admin_gets_403_and_anonymous_401(
    client: httpx.AsyncClient, admin: Account, user: Account, db: Db
) -> None:
    before = db.counts()
    assert_problem(
        await client.post("/cards", json=card_body(), headers=user.auth), 403, "forbidden"
    )
    assert_problem(await client.post("/cards", json=card_body()), 401, "unauthorized")
    card = await create_card(client, admin)
    after_create = db.counts()
    r = await client.patch(f"/cards/{card['id']}", json={"name": "x"}, headers=user.auth)
    assert_problem(r, 403, "forbidden")
    assert db.counts() == after_create
    assert after_create["cards"] == before["cards"] + 1


BAD_CREATE = [
    ({"rarity": "mythic"}, "rarity"),
    ({"rarity": 3}, "rarity"),
    ({"name": "x" * 201}, "name"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"set_name": "s" * 201}, "set_name"),
    ({"number": "9" * 33}, "number"),
    ({"number": 12}, "number"),
    ({"edition": "e" * 65}, "edition"),
    ({"attributes": ["not", "an", "object"]}, "attributes"),
    ({"attributes": {"blob": "x" * 9000}}, "attributes"),
    ({"owner_id": "not-a-uuid"}, "owner_id"),
    ({"owner_id": str(uuid.uuid4())}, "owner_id"),
    ({"status": "listed"}, "status"),
    ({"version": 7}, "version"),
]


@pytest.mark.parametrize(("override", "field"), BAD_CREATE)
async def test_create_card_bad_input_is_422_and_writes_nothing(
    client: httpx.AsyncClient, admin: Account, db: Db, override: dict[str, Any], field: str
) -> None:
    before = db.counts()
    r = await client.post("/cards", json=card_body(**override), headers=admin.auth)
    body = assert_problem(r, 422, "validation_error")
    assert field in body["detail"] or any(field in map(str, e["loc"]) for e in body["errors"])
    assert db.counts() == before


@pytest.mark.parametrize("missing", ["name", "set_name", "number", "rarity"])
async def test_create_card_missing_field_is_422(
    client: httpx.AsyncClient, admin: Account, db: Db, missing: str
) -> None:
    before = db.counts()
    body = card_body()
    del body[missing]
    assert_problem(
        await client.post("/cards", json=body, headers=admin.auth), 422, "validation_error"
    )
    assert db.counts() == before


BAD_PATCH = [
    {"owner_id": str(uuid.uuid4())},
    {"status": "listed"},
    {"version": 9},
    {"id": str(uuid.uuid4())},
    {"name": None},
    {"rarity": None},
    {"attributes": None},
    {"rarity": "mythic"},
    {"name": "n" * 201},
    {"name": 5},
    {},
]


@pytest.mark.parametrize("patch", BAD_PATCH)
async def test_patch_bad_input_is_422_and_writes_nothing(
    client: httpx.AsyncClient, admin: Account, db: Db, patch: dict[str, Any]
) -> None:
    card = await create_card(client, admin)
    before = db.counts()
    r = await client.patch(f"/cards/{card['id']}", json=patch, headers=admin.auth)
    assert_problem(r, 422, "validation_error")
    assert db.counts() == before
    assert db.value("SELECT version FROM cards WHERE id = %s", card["id"]) == 1


async def test_bad_uuid_paths_are_422_and_unknown_ids_404(
    client: httpx.AsyncClient, admin: Account
) -> None:
    for path in ("/cards/nope", "/cards/123/history", "/cards/%20"):
        assert_problem(await client.get(path), 422, "validation_error")
    r = await client.patch("/cards/nope", json={"name": "x"}, headers=admin.auth)
    assert_problem(r, 422, "validation_error")
    missing = uuid.uuid4()
    assert_problem(await client.get(f"/cards/{missing}"), 404, "not_found")
    assert_problem(await client.get(f"/cards/{missing}/history"), 404, "not_found")
    r = await client.patch(f"/cards/{missing}", json={"name": "x"}, headers=admin.auth)
    assert_problem(r, 404, "not_found")
    assert_problem(await client.get("/no/such/route"), 404, "not_found")


async def test_patch_bumps_version_and_readers_never_see_old_version(
    client: httpx.AsyncClient, admin: Account, db: Db
) -> None:
    card = await create_card(client, admin, attributes={"a": 1})
    cid = card["id"]
    first = await client.get(f"/cards/{cid}")  # warms the cache with version 1
    assert first.headers["etag"] == card_cache.etag(cid, 1)
    for i in range(2, 7):
        r = await client.patch(f"/cards/{cid}", json={"name": f"Name {i}"}, headers=admin.auth)
        assert r.status_code == 200, r.text
        assert r.json()["name"] == f"Name {i}"
        assert r.headers["etag"] == card_cache.etag(cid, i)
        got = await client.get(f"/cards/{cid}")
        assert got.json()["name"] == f"Name {i}"
        assert got.headers["etag"] == card_cache.etag(cid, i)
    assert db.value("SELECT version FROM cards WHERE id = %s", cid) == 6
    # Same values again: no change, no version bump.
    r = await client.patch(f"/cards/{cid}", json={"name": "Name 6"}, headers=admin.auth)
    assert r.status_code == 200 and r.headers["etag"] == card_cache.etag(cid, 6)
    # edition may be cleared explicitly; attributes replaced.
    r = await client.patch(
        f"/cards/{cid}", json={"edition": None, "attributes": {"b": 2}}, headers=admin.auth
    )
    assert r.status_code == 200
    assert r.json()["attributes"] == {"b": 2}


async def test_concurrent_reads_during_patches_are_monotonic(
    client: httpx.AsyncClient, admin: Account
) -> None:
    card = await create_card(client, admin)
    cid = card["id"]
    seen: list[int] = []
    done = asyncio.Event()

    async def reader() -> None:
        while not done.is_set():
            r = await client.get(f"/cards/{cid}")
            seen.append(int(r.headers["etag"].strip('"').rsplit(".", 1)[1]))

    async def writer() -> None:
        for i in range(10):
            r = await client.patch(f"/cards/{cid}", json={"number": str(i)}, headers=admin.auth)
            assert r.status_code == 200
            after = await client.get(f"/cards/{cid}")
            assert after.json()["number"] == str(i)
        done.set()

    await asyncio.gather(writer(), reader(), reader())
    assert seen and max(seen) <= 11


async def test_stale_cache_write_is_refused(client: httpx.AsyncClient, admin: Account) -> None:
    """A late read-through carrying an old row cannot overwrite a newer cached version."""
    from api.core.cache import get_card_cache

    card = await create_card(client, admin)
    cid = card["id"]
    r = await client.patch(f"/cards/{cid}", json={"name": "New"}, headers=admin.auth)
    assert r.status_code == 200
    assert await get_card_cache().put({**card, "name": "Old"}, 1) is False
    got = await client.get(f"/cards/{cid}")
    assert got.json()["name"] == "New"


async def test_etag_and_if_none_match(client: httpx.AsyncClient, admin: Account) -> None:
    card = await create_card(client, admin)
    cid = card["id"]
    r = await client.get(f"/cards/{cid}")
    tag = r.headers["etag"]
    r304 = await client.get(f"/cards/{cid}", headers={"If-None-Match": tag})
    assert r304.status_code == 304 and r304.content == b""
    assert r304.headers["etag"] == tag
    assert (
        await client.get(f"/cards/{cid}", headers={"If-None-Match": f"W/{tag}"})
    ).status_code == 304
    assert (
        await client.get(f"/cards/{cid}", headers={"If-None-Match": '"x", ' + tag})
    ).status_code == 304
    await client.patch(f"/cards/{cid}", json={"name": "Changed"}, headers=admin.auth)
    r = await client.get(f"/cards/{cid}", headers={"If-None-Match": tag})
    assert r.status_code == 200 and r.headers["etag"] != tag


async def test_read_through_fills_cache_after_eviction(
    client: httpx.AsyncClient, admin: Account
) -> None:
    from api.core.cache import get_redis

    card = await create_card(client, admin)
    cid = card["id"]
    await get_redis().delete(card_cache.document_key(cid))
    r = await client.get(f"/cards/{cid}")
    assert r.status_code == 200 and r.json() == card
    assert await get_redis().get(card_cache.document_key(cid)) is not None


def card_misses(text: str) -> float:
    """The card cache's miss counter in a /metrics answer (absent before the first)."""
    prefix = 'ece_cache_requests_total{cache="card",result="miss"} '
    return sum(float(x.removeprefix(prefix)) for x in text.splitlines() if x.startswith(prefix))


async def test_a_hit_served_before_routing_is_the_routes_own_answer(
    client: httpx.AsyncClient, admin: Account
) -> None:
    """Hits are answered ahead of the router (api.cards.fast_read); a user must not be
    able to tell: same bytes, same headers, same 304 rule, each miss counted once."""
    from api.core.cache import get_redis

    card = await create_card(client, admin)
    cid = card["id"]
    await get_redis().delete(card_cache.document_key(cid))
    misses = card_misses((await client.get("http://test/metrics")).text)
    by_router = await client.get(f"/cards/{cid}")  # a miss: the route reads through
    assert card_misses((await client.get("http://test/metrics")).text) == misses + 1
    from_cache = await client.get(f"/cards/{cid}")  # a hit
    assert card_misses((await client.get("http://test/metrics")).text) == misses + 1
    assert from_cache.status_code == by_router.status_code == 200
    assert from_cache.content == by_router.content and from_cache.json() == card
    for header in ("etag", "cache-control", "content-type", "content-length"):
        assert from_cache.headers[header] == by_router.headers[header], header
    assert from_cache.headers["x-request-id"]  # the outer middlewares still ran
    tag = from_cache.headers["etag"]
    r304 = await client.get(f"/cards/{cid}", headers={"If-None-Match": tag})
    assert r304.status_code == 304 and r304.content == b"" and r304.headers["etag"] == tag
    upper = await client.get(f"/cards/{cid.upper()}")  # not canonical: the router answers
    assert upper.status_code == 200 and upper.content == by_router.content
    missing = await client.get(f"/cards/{uuid.uuid4()}")
    assert_problem(missing, 404, "not_found")


async def test_list_filters(client: httpx.AsyncClient, admin: Account, user: Account) -> None:
    set_name = unique("set")
    await create_card(client, admin, set_name=set_name, name="Fire Drake", rarity="epic")
    await create_card(client, admin, set_name=set_name, name="Water 50% Sprite", rarity="common")
    await create_card(
        client, admin, set_name=set_name, name="Fire_Ant", rarity="common", owner_id=user.id
    )

    async def names(**params: Any) -> list[str]:
        r = await client.get("/cards", params={"set_name": set_name, **params})
        assert r.status_code == 200, r.text
        return sorted(c["name"] for c in r.json()["items"])

    assert await names() == ["Fire Drake", "Fire_Ant", "Water 50% Sprite"]
    assert await names(rarity="common") == ["Fire_Ant", "Water 50% Sprite"]
    assert await names(owner_id=user.id) == ["Fire_Ant"]
    assert await names(q="fire") == ["Fire Drake", "Fire_Ant"]
    assert await names(q="50%") == ["Water 50% Sprite"]
    assert await names(q="e_d") == []  # "_" is literal (as a wildcard it matches "e D")
    assert await names(status="available") == ["Fire Drake", "Fire_Ant", "Water 50% Sprite"]
    assert await names(status="listed") == []
    for params in (
        {"rarity": "mythic"},
        {"status": "sold"},
        {"owner_id": "x"},
        {"limit": 0},
        {"limit": 201},
        {"limit": "ten"},
        {"q": "q" * 201},
        {"cursor": "!!!"},
    ):
        assert_problem(await client.get("/cards", params=params), 422, "validation_error")


async def test_cursor_pagination_is_stable_under_inserts(
    client: httpx.AsyncClient, admin: Account
) -> None:
    set_name = unique("set")
    created = [
        (await create_card(client, admin, set_name=set_name, number=str(i)))["id"] for i in range(7)
    ]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"set_name": set_name, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        r = await client.get("/cards", params=params)
        assert r.status_code == 200
        page = r.json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        pages += 1
        if pages == 1:  # inserts between pages must not shift what follows
            for i in range(3):
                await create_card(client, admin, set_name=set_name, number=f"late{i}")
        if cursor is None:
            break
    assert seen == list(reversed(created))  # newest first, each exactly once
    assert pages == 3
    r = await client.get("/cards", params={"set_name": set_name})
    assert len(r.json()["items"]) == 10 and r.json()["next_cursor"] is None


async def test_default_limit_is_50(client: httpx.AsyncClient) -> None:
    r = await client.get("/cards")
    assert r.status_code == 200
    assert len(r.json()["items"]) <= 50


async def test_history_pagination(client: httpx.AsyncClient, admin: Account) -> None:
    card = await create_card(client, admin)
    r = await client.get(f"/cards/{card['id']}/history", params={"limit": 1})
    assert r.status_code == 200
    assert len(r.json()["items"]) == 1 and r.json()["next_cursor"] is None
    assert_problem(
        await client.get(f"/cards/{card['id']}/history", params={"limit": 500}),
        422,
        "validation_error",
    )
