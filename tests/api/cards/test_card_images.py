"""Card images: upload, sniffing, size cap, encryption at rest, cache/ETag, permissions."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.cards.images import MAX_IMAGE_BYTES, decode_object
from api.core.crypto import image_cipher
from ece.contracts import card_cache
from ece.settings import Settings
from tests.support.apitest import (
    Account,
    Db,
    assert_problem,
    create_card,
    register_and_login,
)
from tests.support.imagetest import jpeg, png

MiB = 1024 * 1024


async def new_card(client: httpx.AsyncClient, admin: Account, owner: Account) -> dict[str, Any]:
    return await create_card(client, admin, number="7", rarity="epic", owner_id=owner.id)


def objects_of(settings: Settings, card_id: str) -> list[Path]:
    folder = settings.data_dir / "objects" / "cards" / card_id
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def snapshot(db: Db, settings: Settings, card_id: str) -> tuple[Any, ...]:
    """Everything a refused upload must leave untouched."""
    return (
        db.rows("SELECT version, image_object_key FROM cards WHERE id = %s", card_id),
        db.value("SELECT count(*) FROM audit_events"),
        objects_of(settings, card_id),
    )


async def put_image(client: httpx.AsyncClient, account: Account | None, card_id: str,
                    content: Any, content_type: str | None = "image/png",
                    **headers: str) -> httpx.Response:
    all_headers = dict(account.auth) if account else {}
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    all_headers.update(headers)
    return await client.put(f"/cards/{card_id}/image", content=content, headers=all_headers)


async def test_owner_uploads_png_stored_encrypted_and_served_back(
    client: httpx.AsyncClient, admin: Account, user: Account, db: Db, api_settings: Settings
) -> None:
    card = await new_card(client, admin, user)
    image = png(32, 32, seed=1)
    audits = db.value("SELECT count(*) FROM audit_events")

    r = await put_image(client, user, card["id"], image)
    assert r.status_code == 204, r.text

    # The card JSON shows the image at once (cache refreshed after the commit), new version.
    r = await client.get(f"/cards/{card['id']}")
    assert r.json()["image_url"] == f"/api/v1/cards/{card['id']}/image"
    assert r.headers["etag"] == card_cache.etag(card["id"], 2)
    assert db.value("SELECT count(*) FROM audit_events") == audits + 1
    action, details = db.rows(
        "SELECT action, details FROM audit_events WHERE entity_id = %s ORDER BY id DESC LIMIT 1",
        card["id"])[0]
    assert action == "card.image_set"
    assert details["content_type"] == "image/png" and details["bytes"] == len(image)

    # At rest: one object, not the plaintext, not containing any stretch of it.
    [stored] = objects_of(api_settings, card["id"])
    raw = stored.read_bytes()
    assert raw != image and image[16:48] not in raw and b"IHDR" not in raw
    assert decode_object(raw).key_id == image_cipher(api_settings).key_id
    assert stored.stat().st_mode & 0o077 == 0, "objects are private to the service user"

    r = await client.get(f"/cards/{card['id']}/image")
    assert r.status_code == 200
    assert r.content == image
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-content-type-options"] == "nosniff"
    tag = r.headers["etag"]
    r = await client.get(f"/cards/{card['id']}/image", headers={"If-None-Match": tag})
    assert r.status_code == 304 and r.content == b""


async def test_jpeg_type_comes_from_the_bytes_and_replacing_deletes_the_old_object(
    client: httpx.AsyncClient, admin: Account, user: Account, api_settings: Settings
) -> None:
    card = await new_card(client, admin, user)
    assert (await put_image(client, user, card["id"], png(seed=2))).status_code == 204
    first_tag = (await client.get(f"/cards/{card['id']}/image")).headers["etag"]

    image = jpeg(64, 48, comment=b"scan of the front")
    r = await put_image(client, admin, card["id"], image, "application/octet-stream")
    assert r.status_code == 204, r.text  # an admin may, and the bytes say JPEG

    r = await client.get(f"/cards/{card['id']}/image", headers={"If-None-Match": first_tag})
    assert r.status_code == 200, "the old ETag no longer matches"
    assert r.content == image and r.headers["content-type"] == "image/jpeg"
    assert len(objects_of(api_settings, card["id"])) == 1, "the replaced object is gone"
    assert (await client.get(f"/cards/{card['id']}")).headers["etag"] == card_cache.etag(
        card["id"], 3)


async def test_exactly_five_mib_is_accepted(
    client: httpx.AsyncClient, admin: Account, user: Account
) -> None:
    card = await new_card(client, admin, user)
    image = png(64, 64, seed=3, size=MAX_IMAGE_BYTES)
    assert len(image) == 5 * MiB
    assert (await put_image(client, user, card["id"], image)).status_code == 204
    assert (await client.get(f"/cards/{card['id']}/image")).content == image


@pytest.mark.parametrize(
    ("content", "content_type", "why"),
    [
        (b"just some text, not an image", "image/png", "declared PNG, is text"),
        (png(seed=4), "text/plain", "declared text"),
        (png(seed=4), "image/gif", "declared GIF"),
        (jpeg(), "image/png", "declared PNG, is JPEG"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", None, "a GIF"),
        (png(seed=4)[:-5], "image/png", "truncated PNG"),
        (png(seed=4)[:40] + b"\x00" + png(seed=4)[41:], "image/png", "PNG with a bad CRC"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png", "PNG signature only"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 64, "image/jpeg", "JPEG magic only"),
        (jpeg()[:-2], "image/jpeg", "JPEG without EOI"),
        (b"", "image/png", "empty body"),
    ],
)
async def test_unsupported_bytes_or_types_are_415_and_change_nothing(
    client: httpx.AsyncClient, admin: Account, user: Account, db: Db, api_settings: Settings,
    content: bytes, content_type: str | None, why: str,
) -> None:
    card = await new_card(client, admin, user)
    before = snapshot(db, api_settings, card["id"])
    r = await put_image(client, user, card["id"], content, content_type)
    assert_problem(r, 415, "unsupported_media_type")
    assert snapshot(db, api_settings, card["id"]) == before, why


async def test_too_large_is_413_while_streaming_and_changes_nothing(
    client: httpx.AsyncClient, admin: Account, user: Account, db: Db, api_settings: Settings
) -> None:
    card = await new_card(client, admin, user)
    before = snapshot(db, api_settings, card["id"])

    # Declared length over the cap: refused before reading.
    r = await put_image(client, user, card["id"], png(seed=5, size=MAX_IMAGE_BYTES + 1))
    assert_problem(r, 413, "payload_too_large")

    # Chunked, no length, never ending: refused once the cap is passed, not at the end.
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        chunk = png(seed=5)[:8] + b"\x00" * (64 * 1024 - 8)
        while True:
            sent += len(chunk)
            yield chunk

    r = await put_image(client, user, card["id"], endless())
    assert_problem(r, 413, "payload_too_large")
    assert MAX_IMAGE_BYTES < sent <= MAX_IMAGE_BYTES + 128 * 1024
    assert snapshot(db, api_settings, card["id"]) == before


async def test_permissions_and_unknown_cards(
    client: httpx.AsyncClient, admin: Account, user: Account, db: Db, api_settings: Settings
) -> None:
    card = await new_card(client, admin, user)
    stranger = await register_and_login(client)
    before = snapshot(db, api_settings, card["id"])

    assert_problem(await put_image(client, None, card["id"], png()), 401, "unauthorized")
    assert_problem(await put_image(client, stranger, card["id"], png()), 403, "card_not_owned")
    # Checked before the body: a stranger's oversized or junk upload is still a 403.
    r = await put_image(client, stranger, card["id"], b"x" * (MAX_IMAGE_BYTES + 1), "text/plain")
    assert_problem(r, 403, "card_not_owned")
    assert snapshot(db, api_settings, card["id"]) == before

    assert_problem(await put_image(client, user, str(uuid.uuid4()), png()), 404, "not_found")
    assert_problem(await put_image(client, user, "not-a-uuid", png()), 422, "validation_error")
    assert_problem(await client.get(f"/cards/{card['id']}/image"), 404, "not_found")
    assert_problem(await client.get(f"/cards/{uuid.uuid4()}/image"), 404, "not_found")
    assert_problem(await client.get("/cards/nope/image"), 422, "validation_error")


async def test_openapi_documents_the_image_endpoints(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    put = paths["/api/v1/cards/{card_id}/image"]["put"]
    assert set(put["requestBody"]["content"]) == {"image/png", "image/jpeg"}
    assert {"204", "403", "413", "415"} <= set(put["responses"])
    assert "get" in paths["/api/v1/cards/{card_id}/image"]


async def test_concurrent_uploads_over_real_uvicorn_leave_one_consistent_image(
    platform: Any, client: httpx.AsyncClient, admin: Account, user: Account, db: Db,
    api_settings: Settings,
) -> None:
    """Six uploads race for one card through real HTTP: every one commits, the card ends
    pointing at exactly one object that exists and decrypts to one of the uploads."""
    platform.require("api")
    card = await new_card(client, admin, user)
    images = [png(24, 24, seed=100 + i) for i in range(3)] + [jpeg(8 * (i + 1), 8)
                                                              for i in range(3)]
    base = platform.part("api").url
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        answers = await asyncio.gather(*(
            http.put(f"/cards/{card['id']}/image", content=image, headers=user.auth)
            for image in images))
        assert [a.status_code for a in answers] == [204] * len(images)
        served = await http.get(f"/cards/{card['id']}/image")
        assert served.content in images
        big = await http.put(f"/cards/{card['id']}/image", headers=user.auth,
                             content=png(64, 64, seed=9, size=MAX_IMAGE_BYTES + MiB))
        assert_problem(big, 413, "payload_too_large")

    key = db.value("SELECT image_object_key FROM cards WHERE id = %s", card["id"])
    assert db.value("SELECT version FROM cards WHERE id = %s", card["id"]) == 1 + len(images)
    assert [p.name for p in objects_of(api_settings, card["id"])] == [key.rsplit("/", 1)[-1]]
    cached = (await client.get(f"/cards/{card['id']}")).headers["etag"]
    assert cached == card_cache.etag(card["id"], 1 + len(images))
