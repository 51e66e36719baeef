"""Platform key files: created once and rewrapped by an atomic, durable replace."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from api.core.crypto import add_kek_version
from api.nfts import platform_keys
from ece.settings import Settings


def test_rewrap_replaces_the_envelope_atomically_and_durably(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=tmp_path, env="dev", custody_kek=SecretStr("zero"))
    secret = platform_keys.load_or_create(settings, platform_keys.FEE_PAYER,
                                          lambda: (b"secret bytes", "PUBLIC"))
    path = platform_keys.key_path(settings, platform_keys.FEE_PAYER)
    old = json.loads(path.read_text())
    add_kek_version(settings)

    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert platform_keys.rewrap(settings) == 1
    assert synced == ["file", "dir"]
    new = json.loads(path.read_text())
    assert new["key_id"] != old["key_id"] and new["public"] == "PUBLIC"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file
    assert platform_keys.load_or_create(settings, platform_keys.FEE_PAYER,
                                        lambda: (b"other", "OTHER")) == secret
    assert platform_keys.rewrap(settings) == 0  # already under the active KEK
