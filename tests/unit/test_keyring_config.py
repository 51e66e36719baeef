"""Where KEK versions come from: explicit configuration in prod, never a file prod wrote.

Pure: settings objects and temporary folders, no platform.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from api.core.crypto import (
    KeyringConfigError,
    add_kek_version,
    custody_cipher,
    kek_dir,
    kek_versions,
    keyring,
)
from ece.settings import Settings


def prod(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=tmp_path, env="prod", **values)


@pytest.mark.parametrize("typo", ["production", "Prod ", "staging", ""])
def test_an_unknown_ece_env_fails_at_start_up(typo: str, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    if typo.strip().lower() == "prod":
        assert Settings(env=typo).env == "prod"  # case and spaces are forgiven, nothing else
        return
    monkeypatch.setenv("ECE_ENV", typo)
    with pytest.raises(ValidationError, match="ECE_ENV must be one of dev, test, prod"):
        Settings()


def test_known_environments_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ("dev", "test", "prod"):
        monkeypatch.setenv("ECE_ENV", env)
        assert Settings().env == env


def test_prod_takes_versions_from_ece_kek_versions(tmp_path: Path) -> None:
    settings = prod(tmp_path, custody_kek=SecretStr("zero"),
                    kek_versions=SecretStr(json.dumps({"2": "two", "1": "one"})))
    assert kek_versions(settings) == [(0, "zero"), (1, "one"), (2, "two")]
    ring = custody_cipher(settings)
    assert ring.key_id == keyring(prod(tmp_path, kek_versions=SecretStr('{"9": "two"}')),
                                  "custody").key_id  # the newest seals, whatever its number
    assert not (tmp_path / "secrets").exists()  # nothing generated, nothing written


def test_prod_needs_no_ece_custody_kek_when_a_keyring_is_configured(tmp_path: Path) -> None:
    keyring_file = tmp_path / "keyring.json"
    keyring_file.write_text(json.dumps({"1": "one"}))
    settings = prod(tmp_path, keyring_file=keyring_file)
    assert kek_versions(settings) == [(1, "one")]
    # the file is re-read on use: a version the secrets manager adds is active at once
    first = custody_cipher(settings).key_id
    keyring_file.write_text(json.dumps({"1": "one", "2": "two"}))
    ring = custody_cipher(settings)
    assert ring.key_id != first and first in ring.key_ids


def test_prod_without_any_kek_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeyringConfigError, match="ECE_CUSTODY_KEK and/or ECE_KEK_VERSIONS"):
        kek_versions(prod(tmp_path))
    assert not (tmp_path / "secrets").exists()


def test_prod_refuses_to_generate_a_kek_file(tmp_path: Path) -> None:
    settings = prod(tmp_path, custody_kek=SecretStr("zero"))
    with pytest.raises(KeyringConfigError, match="ECE_ENV=prod refuses to generate KEK files"):
        add_kek_version(settings)
    assert not kek_dir(settings).exists()


def test_prod_refuses_kek_files_it_finds_rather_than_ignoring_them(tmp_path: Path) -> None:
    dev = Settings(data_dir=tmp_path, env="dev", custody_kek=SecretStr("zero"))
    assert add_kek_version(dev, "file-secret") == 1
    with pytest.raises(KeyringConfigError, match="holds file-based versions 1") as raised:
        kek_versions(prod(tmp_path, custody_kek=SecretStr("zero")))
    assert "file-secret" not in str(raised.value)


def test_an_explicit_keyring_refuses_files_in_dev_too(tmp_path: Path) -> None:
    dev = Settings(data_dir=tmp_path, env="dev", kek_versions=SecretStr('{"1": "one"}'))
    with pytest.raises(KeyringConfigError, match="explicit keyring"):
        add_kek_version(dev)
    plain = Settings(data_dir=tmp_path, env="dev", custody_kek=SecretStr("zero"))
    assert add_kek_version(plain) == 1  # without one, dev rotation still writes files
    with pytest.raises(KeyringConfigError, match="configured explicitly"):
        kek_versions(dev)


@pytest.mark.parametrize("raw, message", [
    ('{"1": "s3cr3t", oops}', "is not JSON"),
    ('["s3cr3t"]', "must be a JSON object"),
    ('{"0": "s3cr3t"}', "0 is ECE_CUSTODY_KEK"),
    ('{"v1": "s3cr3t"}', "not a positive integer"),
    ('{"1": ""}', "non-empty string"),
])
def test_malformed_keyrings_are_named_without_their_secrets(tmp_path: Path, raw: str,
                                                            message: str) -> None:
    with pytest.raises(KeyringConfigError, match=message) as raised:
        kek_versions(prod(tmp_path, kek_versions=SecretStr(raw)))
    assert "s3cr3t" not in str(raised.value)


def test_the_two_sources_must_agree(tmp_path: Path) -> None:
    keyring_file = tmp_path / "keyring.json"
    keyring_file.write_text('{"1": "one"}')
    agreeing = prod(tmp_path, kek_versions=SecretStr('{"1": "one", "2": "two"}'),
                    keyring_file=keyring_file)
    assert kek_versions(agreeing) == [(1, "one"), (2, "two")]
    clashing = prod(tmp_path, kek_versions=SecretStr('{"1": "uno"}'), keyring_file=keyring_file)
    with pytest.raises(KeyringConfigError, match="version 1 differs"):
        kek_versions(clashing)
    missing = prod(tmp_path, keyring_file=tmp_path / "absent.json")
    with pytest.raises(KeyringConfigError, match="cannot be read"):
        kek_versions(missing)


def test_dev_rotation_files_are_private(tmp_path: Path) -> None:
    dev = Settings(data_dir=tmp_path, env="dev", custody_kek=SecretStr("zero"))
    assert add_kek_version(dev) == 1 and add_kek_version(dev) == 2
    folder = kek_dir(dev)
    assert sorted(p.name for p in folder.iterdir()) == ["000001", "000002"]
    assert all(os.stat(p).st_mode & 0o777 == 0o600 for p in folder.iterdir())
    assert [v for v, _ in kek_versions(dev)] == [0, 1, 2]
