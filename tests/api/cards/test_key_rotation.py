"""KEK rotation (``ece keys rotate``): rewrap everything, readers never fail, wrong KEK is clear.

Each test gets its own database (copied from a migrated template) and its own data
folder (KEKs, objects, platform key files), so rotating here cannot disturb any
other test's keys.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from redis.asyncio import Redis
from solders.keypair import Keypair
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from typer.testing import CliRunner

from api.audit.chain import AuditContext
from api.cards.images import decode_object, load_image, set_card_image
from api.core.cache import CardCache
from api.core.crypto import DecryptionError, custody_cipher, image_cipher, kek_versions
from api.core.uow import UnitOfWork
from api.storage import get_object_store
from api.users.models import User
from api.users.service import create_user, load_custody_secret
from ece.db_roles import with_database
from ece.settings import Settings, get_settings
from ops.cli.keys import RotationRefused, key_status, keys_app, rotate_keys
from tests.support.imagetest import jpeg, png


@pytest.fixture(scope="module")
def template_db(api_settings: Settings) -> Iterator[str]:
    """A migrated database used only as a template (no connections stay open on it)."""
    from api.migrations.runner import upgrade_to_head

    name = f"ece_keys_tpl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(api_settings.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    upgrade_to_head(with_database(api_settings.database_url, name))
    yield name
    with psycopg.connect(api_settings.database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class World:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


@pytest.fixture
async def world(api_settings: Settings, template_db: str, tmp_path: Path
                ) -> AsyncIterator[World]:
    """Settings (also exported as ECE_*) pointing at a private database and data folder."""
    name = f"ece_keys_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(api_settings.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    url = with_database(api_settings.database_url, name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECE_DATABASE_URL", url)
        mp.setenv("ECE_DATA_DIR", str(tmp_path))
        mp.delenv("ECE_CUSTODY_KEK", raising=False)
        get_settings.cache_clear()
        settings = get_settings()
        engine = create_async_engine(settings.sqlalchemy_url, pool_size=4)
        try:
            yield World(settings, engine, async_sessionmaker(engine, expire_on_commit=False))
        finally:
            await engine.dispose()
    get_settings.cache_clear()
    with psycopg.connect(api_settings.database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def add_user(world: World) -> User:
    async with world.sessions() as session:
        name = f"k{uuid.uuid4().hex[:10]}"
        user = await create_user(session, AuditContext(ip="test"), email=f"{name}@example.com",
                                 username=name, password="correct horse battery")
        await session.commit()
        return user


async def add_image(world: World, owner: User, image: bytes) -> str:
    card_id = uuid.uuid4()
    async with world.engine.begin() as conn:
        await conn.execute(text(
            "INSERT INTO cards (id, name, set_name, number, rarity, owner_id) "
            "VALUES (:id, 'Key Card', 'Rotation', '1', 'rare', :owner)"),
            {"id": card_id, "owner": owner.id})
    kind = "image/png" if image.startswith(b"\x89PNG") else "image/jpeg"
    redis = Redis.from_url(world.settings.redis_url)  # own client: tests here switch loops
    try:
        async with world.sessions() as session, UnitOfWork(session) as uow:
            card = await set_card_image(uow, CardCache(redis, 60),
                                        get_object_store(world.settings),
                                        AuditContext(ip="test"), owner, card_id, image, kind)
    finally:
        await redis.aclose()
    assert card.image_object_key is not None
    return card.image_object_key


async def check_everything_opens(world: World, users: list[User], images: dict[str, bytes]
                                 ) -> None:
    async with world.sessions() as session:
        for user in users:
            secret = await load_custody_secret(session, user.id)
            assert str(Keypair.from_bytes(secret).pubkey()) == user.custody_address
    store = get_object_store(world.settings)
    for key, image in images.items():
        assert (await load_image(store, key))[0] == image


async def key_ids(world: World) -> tuple[set[str], set[str]]:
    async with world.engine.connect() as conn:
        custody = {r[0] for r in await conn.execute(text("SELECT key_id FROM custody_keys"))}
    store = get_object_store(world.settings)
    objects = {decode_object(await store.get(k)).key_id async for k in store.list("cards/")}
    return custody, objects


async def test_rotate_rewraps_custody_keys_images_and_platform_keys(world: World) -> None:
    platform_keys = pytest.importorskip("api.nfts.platform_keys")
    users = [await add_user(world) for _ in range(3)]
    images = {await add_image(world, users[0], png(16, 16, seed=i)): png(16, 16, seed=i)
              for i in range(2)}
    jpg = jpeg(32, 32)
    images[await add_image(world, users[1], jpg)] = jpg
    payer = platform_keys.fee_payer(world.settings)
    old_custody, old_images = custody_cipher(world.settings).key_id, image_cipher(
        world.settings).key_id
    assert await key_ids(world) == ({old_custody}, {old_images})

    report = await rotate_keys(world.settings, engine=world.engine, settle_seconds=0.1)

    assert report.version == 1 and report.failures == []
    assert (report.custody_rewrapped, report.images_rewrapped, report.platform_rewrapped) == (
        3, 3, 1)
    assert report.remaining == {"custody_keys": 0, "images": 0, "platform_keys": 0}
    new_custody, new_images = custody_cipher(world.settings).key_id, image_cipher(
        world.settings).key_id
    assert new_custody != old_custody and new_images != old_images
    assert report.active["custody"] == new_custody
    assert await key_ids(world) == ({new_custody}, {new_images})
    await check_everything_opens(world, users, images)
    platform_keys._cache.clear()
    assert platform_keys.fee_payer(world.settings).pubkey() == payer.pubkey()
    async with world.engine.connect() as conn:
        status = await key_status(world.settings, conn)
    assert status.not_active() == {"custody_keys": 0, "images": 0, "platform_keys": 0}
    assert status.platform_keys == {status.active["platform-keys"]: 1}

    # A second rotation: records move on again, and a copy taken under version 0 still opens.
    async with world.engine.connect() as conn:
        backup = (await conn.execute(text(
            "SELECT secret_enc FROM custody_keys WHERE user_id = :u"), {"u": users[0].id})
        ).scalar_one()
    report = await rotate_keys(world.settings, engine=world.engine, settle_seconds=0.1)
    assert report.version == 2 and report.custody_rewrapped == 3
    ring = custody_cipher(world.settings)
    assert len(kek_versions(world.settings)) == 3
    secret = ring.open(bytes(backup), str(users[0].id).encode())
    assert str(Keypair.from_bytes(secret).pubkey()) == users[0].custody_address


async def test_readers_and_writers_never_fail_while_rotating(world: World) -> None:
    """Reads of every record and new registrations/uploads run throughout a rotation:
    none fails, and records sealed under the old KEK mid-rotation are swept too."""
    users = [await add_user(world) for _ in range(4)]
    images = {await add_image(world, users[0], png(8, 8, seed=i)): png(8, 8, seed=i)
              for i in range(3)}
    done = asyncio.Event()
    errors: list[BaseException] = []
    rounds = 0

    async def read_and_write() -> None:
        nonlocal rounds
        while not done.is_set():
            try:
                await check_everything_opens(world, list(users), dict(images))
                users.append(await add_user(world))
                image = png(8, 8, seed=1000 + rounds)
                images[await add_image(world, users[0], image)] = image
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)
                return
            rounds += 1

    worker = asyncio.create_task(read_and_write())
    await asyncio.sleep(0.3)
    report = await rotate_keys(world.settings, engine=world.engine, settle_seconds=1.5)
    await asyncio.sleep(0.3)
    done.set()
    await worker
    assert errors == [] and rounds >= 3
    assert report.failures == []
    assert report.remaining == {"custody_keys": 0, "images": 0, "platform_keys": 0}
    await check_everything_opens(world, users, images)
    assert await key_ids(world) == ({custody_cipher(world.settings).key_id},
                                    {image_cipher(world.settings).key_id})


async def test_wrong_kek_is_a_clear_error_without_key_material(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await add_user(world)
    image = png(seed=7)
    key = await add_image(world, user, image)
    right = kek_versions(world.settings)[0][1]
    right_id = custody_cipher(world.settings).key_id
    right_image_id = image_cipher(world.settings).key_id

    wrong_secret = "not-the-kek-" + "w" * 40
    monkeypatch.setenv("ECE_CUSTODY_KEK", wrong_secret)
    get_settings.cache_clear()
    wrong = get_settings()
    async with world.sessions() as session:
        with pytest.raises(DecryptionError) as excinfo:
            await load_custody_secret(session, user.id)
    message = str(excinfo.value)
    assert "no configured KEK opens" in message and custody_cipher(wrong).key_id in message
    with pytest.raises(DecryptionError) as excinfo:
        await load_image(get_object_store(wrong), key)
    assert right_image_id in str(excinfo.value)  # names the key id the record needs

    with pytest.raises(RotationRefused) as refused:
        await rotate_keys(wrong, engine=world.engine, settle_seconds=0)
    assert right_id in str(refused.value)
    assert len(kek_versions(wrong)) == 1, "a refused rotation writes no KEK version"

    # The CLI runs its own event loop: give it a thread.
    result = await asyncio.to_thread(CliRunner().invoke, keys_app,
                                     ["rotate", "--settle-seconds", "0"])
    assert result.exit_code == 2, result.output
    assert "not configured" in result.output and right_id in result.output
    for secret in (right, wrong_secret, base64.b64encode(custody_cipher(wrong).kek).decode(),
                   custody_cipher(wrong).kek.hex()):
        assert secret not in message and secret not in result.output
        assert secret not in repr(custody_cipher(wrong))


def test_cli_rotate_and_status_print_ids_never_keys(
    world: World, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_seed_one(world.settings))
    runner = CliRunner()
    before = runner.invoke(keys_app, ["status"])
    assert before.exit_code == 0, before.output
    assert "custody keys: 1 under custody:" in before.output
    with caplog.at_level(logging.DEBUG):
        result = runner.invoke(keys_app, ["rotate", "--settle-seconds", "0"])
    assert result.exit_code == 0, result.output
    assert "KEK version 1 active" in result.output
    assert "rewrapped: 1 custody keys, 1 card images" in result.output
    after = runner.invoke(keys_app, ["status"])
    assert f"custody keys: 1 under {custody_cipher(world.settings).key_id} (active)" in (
        after.output)
    captured = capfd.readouterr()
    everything = before.output + result.output + after.output + caplog.text + captured.out + (
        captured.err)
    for _, secret in kek_versions(world.settings):
        for purpose in ("custody", "images", "platform-keys"):
            from api.core.crypto import EnvelopeCipher

            kek = EnvelopeCipher.from_secret(secret, purpose).kek
            assert kek.hex() not in everything and base64.b64encode(kek).decode() not in (
                everything)
        assert secret not in everything


async def _seed_one(settings: Settings) -> Any:
    engine = create_async_engine(settings.sqlalchemy_url)
    try:
        world = World(settings, engine, async_sessionmaker(engine, expire_on_commit=False))
        user = await add_user(world)
        await add_image(world, user, png(seed=11))
    finally:
        await engine.dispose()
