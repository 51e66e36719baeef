"""Envelope encryption at rest: AES-256-GCM data keys wrapped by a versioned KEK."""

from __future__ import annotations

import pytest

from api.core.crypto import DecryptionError, EnvelopeCipher


def test_seal_then_open_returns_the_plaintext_and_hides_it() -> None:
    cipher = EnvelopeCipher.from_secret("a secret", "custody")
    blob = cipher.seal(b"private key bytes", aad=b"user-1")
    assert b"private key bytes" not in blob
    assert cipher.open(blob, aad=b"user-1") == b"private key bytes"


def test_each_seal_uses_a_fresh_data_key() -> None:
    cipher = EnvelopeCipher.from_secret("a secret", "custody")
    assert cipher.seal(b"same") != cipher.seal(b"same")


def test_wrong_aad_wrong_key_or_tampering_is_refused() -> None:
    cipher = EnvelopeCipher.from_secret("a secret", "custody")
    blob = cipher.seal(b"payload", aad=b"user-1")
    with pytest.raises(DecryptionError):
        cipher.open(blob, aad=b"user-2")
    with pytest.raises(DecryptionError):
        EnvelopeCipher.from_secret("another secret", "custody").open(blob, aad=b"user-1")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(DecryptionError):
        cipher.open(tampered, aad=b"user-1")
    with pytest.raises(DecryptionError):
        cipher.open(b"\x07" + blob[1:], aad=b"user-1")


def test_purposes_derive_independent_keys() -> None:
    custody = EnvelopeCipher.from_secret("one secret", "custody")
    images = EnvelopeCipher.from_secret("one secret", "images")
    assert custody.key_id != images.key_id
    with pytest.raises(DecryptionError):
        images.open(custody.seal(b"x"))


def test_rewrap_moves_the_envelope_to_a_new_kek_without_reencrypting() -> None:
    old = EnvelopeCipher.from_secret("old", "images")
    new = EnvelopeCipher.from_secret("new", "images")
    blob = old.seal(b"x" * 4096, aad=b"obj")
    moved = old.rewrap(blob, new, aad=b"obj")
    assert new.open(moved, aad=b"obj") == b"x" * 4096
    assert moved[-4096:] == blob[-4096:]  # the payload ciphertext is untouched
    with pytest.raises(DecryptionError):
        old.open(moved, aad=b"obj")


def test_key_material_never_shows_in_a_repr() -> None:
    cipher = EnvelopeCipher.from_secret("a secret", "custody")
    assert cipher.kek.hex() not in repr(cipher)
    assert "a secret" not in repr(cipher)
