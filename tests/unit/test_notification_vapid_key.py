"""The VAPID key: generated once, sealed, served as the browser's applicationServerKey,
and kept (same public key) across a KEK rotation."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from api.core.crypto import add_kek_version
from api.notifications import vapid
from ece.settings import Settings


def fresh(tmp_path: Path) -> Settings:
    vapid._cache.clear()
    return Settings(data_dir=tmp_path, env="dev", custody_kek=SecretStr("zero"))


def test_generated_once_sealed_and_served_as_an_uncompressed_point(tmp_path: Path) -> None:
    settings = fresh(tmp_path)
    public = vapid.public_key_b64url(settings)
    raw = base64.urlsafe_b64decode(public + "=" * (-len(public) % 4))
    assert len(raw) == 65 and raw[0] == 4 and "=" not in public
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    path = vapid.key_path(settings)
    assert path.name == "vapid_private.sealed"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    record = json.loads(path.read_text())
    scalar = vapid.vapid_keys(settings).private.private_numbers().private_value
    assert scalar.to_bytes(32, "big") not in base64.b64decode(record["sealed"])
    vapid._cache.clear()  # another process: reads the same key, never makes a new one
    assert vapid.public_key_b64url(settings) == public
    assert vapid.vapid_for_push(settings).public_key is not None


def test_a_rotation_rewraps_but_keeps_the_key(tmp_path: Path) -> None:
    settings = fresh(tmp_path)
    public = vapid.public_key_b64url(settings)
    before = json.loads(vapid.key_path(settings).read_text())["key_id"]
    add_kek_version(settings)
    assert vapid.rewrap(settings) is True
    assert json.loads(vapid.key_path(settings).read_text())["key_id"] != before
    assert vapid.public_key_b64url(settings) == public
    assert vapid.rewrap(settings) is False


def test_a_foreign_kek_cannot_open_it(tmp_path: Path) -> None:
    vapid.public_key_b64url(fresh(tmp_path))
    other = Settings(data_dir=tmp_path, env="dev", custody_kek=SecretStr("another"))
    vapid._cache.clear()
    with pytest.raises(vapid.VapidKeyError):
        vapid.vapid_keys(other)
