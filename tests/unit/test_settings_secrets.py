"""Generated development secrets: private, stable, written once; refused in prod."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr

from ece.settings import Settings


def test_a_generated_secret_is_private_and_stable(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, env="dev")
    first = settings.secret("jwt_secret")
    path = tmp_path / "secrets" / "jwt_secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert Settings(data_dir=tmp_path, env="dev").secret("jwt_secret") == first
    assert [p.name for p in path.parent.iterdir()] == ["jwt_secret"]  # no temp file left


def test_concurrent_first_use_agrees_on_one_secret(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, env="dev")
    with ThreadPoolExecutor(8) as pool:
        seen = set(pool.map(lambda _: settings.secret("kek"), range(32)))
    assert len(seen) == 1


def test_prod_refuses_a_generated_secret_but_takes_an_explicit_one(tmp_path: Path) -> None:
    prod = Settings(data_dir=tmp_path, env="prod")
    with pytest.raises(RuntimeError, match="ECE_JWT_SECRET must be set"):
        prod.secret("jwt_secret")
    assert not (tmp_path / "secrets").exists()
    assert prod.secret("jwt_secret", SecretStr("configured")) == "configured"
