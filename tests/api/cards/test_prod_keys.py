"""KEKs in prod: versions come from the keyring a secrets manager fills, never from a file
the platform generated; ``ece keys rewrap`` moves every record to a newly added version.

Reuses the private database and data folder of the rotation tests (``world``).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.core.crypto import custody_cipher, image_cipher, kek_dir, kek_versions
from ece.private_files import write_private
from ece.settings import get_settings
from ops.cli.keys import RotationRefused, keys_app, rotate_keys
from tests.api.cards import test_key_rotation as rotation
from tests.support.imagetest import png

template_db = rotation.template_db  # the fixtures, shared with the rotation tests
world = rotation.world


def _keyring(path: Path, versions: dict[str, str]) -> None:
    write_private(path, json.dumps(versions), replace=True)  # as a secrets manager would


async def test_prod_rotation_comes_from_the_keyring_file(
    world: rotation.World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring_file = tmp_path / "keyring.json"
    _keyring(keyring_file, {"1": "first-version-" + "a" * 40})
    monkeypatch.setenv("ECE_ENV", "prod")
    monkeypatch.setenv("ECE_KEYRING_FILE", str(keyring_file))
    monkeypatch.setenv("ECE_AUDIT_HMAC_KEY", "audit-" + "k" * 40)
    monkeypatch.setenv("ECE_JWT_SECRET", "jwt-" + "j" * 40)
    get_settings.cache_clear()
    settings = get_settings()
    world = rotation.World(settings, world.engine, world.sessions)

    users = [await rotation.add_user(world) for _ in range(2)]
    image = png(8, 8, seed=3)
    images = {await rotation.add_image(world, users[0], image): image}
    first = custody_cipher(settings).key_id
    assert await rotation.key_ids(world) == ({first}, {image_cipher(settings).key_id})

    # Generating a KEK file is refused, by the function and by the command.
    with pytest.raises(RotationRefused, match="ECE_ENV=prod refuses to generate KEK files"):
        await rotate_keys(settings, engine=world.engine, settle_seconds=0)
    result = await asyncio.to_thread(CliRunner().invoke, keys_app,
                                     ["rotate", "--settle-seconds", "0"])
    assert result.exit_code == 2 and "ece keys rewrap" in result.output, result.output
    assert not kek_dir(settings).exists()

    # The secrets manager adds version 2: new records seal with it at once (no restart),
    # and `ece keys rewrap` moves the older ones.
    _keyring(keyring_file, {"1": "first-version-" + "a" * 40, "2": "second-version-" + "b" * 40})
    second = custody_cipher(settings).key_id
    assert second != first
    users.append(await rotation.add_user(world))
    result = await asyncio.to_thread(CliRunner().invoke, keys_app,
                                     ["rewrap", "--settle-seconds", "0"])
    assert result.exit_code == 0, result.output
    assert "KEK version 2 active" in result.output
    assert "rewrapped: 2 custody keys, 1 card images" in result.output
    assert await rotation.key_ids(world) == ({second}, {image_cipher(settings).key_id})
    await rotation.check_everything_opens(world, users, images)
    assert [v for v, _ in kek_versions(settings)] == [1, 2]
    assert not kek_dir(settings).exists()
    for secret in ("first-version-", "second-version-"):
        assert secret not in result.output
