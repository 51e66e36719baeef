"""AES-256-GCM envelope encryption for secrets at rest (custody keys, card images).

Each record gets its own random 256-bit data key; the data key is wrapped with the
key-encryption key (KEK) from settings. Why an envelope: rotating the KEK means
re-wrapping 60-byte data keys instead of re-encrypting every payload, and the
``key_id`` stored beside each record says which KEK wrapped it. The caller's
``aad`` (e.g. the owning user id) is bound into both layers so a ciphertext copied
to another record fails to decrypt.

Blob layout (version 1): ``0x01 | wrap_nonce(12) | wrapped_dek(48) | nonce(12) | ct+tag``.
"""

import hashlib
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ece.settings import Settings

VERSION = b"\x01"
NONCE = 12
WRAPPED_DEK = 32 + 16


class DecryptionError(Exception):
    """Wrong KEK, wrong aad, or tampered ciphertext."""


@dataclass(frozen=True)
class EnvelopeCipher:
    kek: bytes
    key_id: str

    @classmethod
    def from_secret(cls, secret: str, purpose: str) -> "EnvelopeCipher":
        """Derive a 256-bit KEK from a configured secret string (any length, any alphabet).

        HKDF with ``purpose`` as info gives independent keys per use from one secret.
        """
        kek = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=f"ece:{purpose}".encode()
        ).derive(secret.encode())
        key_id = f"{purpose}:{hashlib.sha256(kek).hexdigest()[:16]}"
        return cls(kek=kek, key_id=key_id)

    def seal(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        dek = AESGCM.generate_key(bit_length=256)
        wrap_nonce, nonce = os.urandom(NONCE), os.urandom(NONCE)
        wrapped = AESGCM(self.kek).encrypt(wrap_nonce, dek, VERSION + aad)
        ciphertext = AESGCM(dek).encrypt(nonce, plaintext, VERSION + aad)
        return VERSION + wrap_nonce + wrapped + nonce + ciphertext

    def open(self, blob: bytes, aad: bytes = b"") -> bytes:
        if blob[:1] != VERSION or len(blob) < 1 + NONCE + WRAPPED_DEK + NONCE + 16:
            raise DecryptionError("unknown envelope format")
        pos = 1
        wrap_nonce = blob[pos : pos + NONCE]
        pos += NONCE
        wrapped = blob[pos : pos + WRAPPED_DEK]
        pos += WRAPPED_DEK
        nonce = blob[pos : pos + NONCE]
        pos += NONCE
        try:
            dek = AESGCM(self.kek).decrypt(wrap_nonce, wrapped, VERSION + aad)
            return AESGCM(dek).decrypt(nonce, blob[pos:], VERSION + aad)
        except Exception as exc:  # cryptography raises InvalidTag
            raise DecryptionError("cannot decrypt envelope") from exc


def custody_cipher(settings: Settings) -> EnvelopeCipher:
    """The cipher for custody secret keys (KEK from ``ECE_CUSTODY_KEK`` or data/secrets)."""
    return EnvelopeCipher.from_secret(
        settings.secret("custody_kek", settings.custody_kek), "custody"
    )
