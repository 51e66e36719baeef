"""AES-256-GCM envelope encryption for secrets at rest (custody keys, card images).

Each record gets its own random 256-bit data key; the data key is wrapped with the
key-encryption key (KEK) from settings. Why an envelope: rotating the KEK means
re-wrapping 60-byte data keys instead of re-encrypting every payload, and the
``key_id`` stored beside each record says which KEK wrapped it. The caller's
``aad`` (e.g. the owning user id) is bound into both layers so a ciphertext copied
to another record fails to decrypt.

Blob layout (version 1): ``0x01 | wrap_nonce(12) | wrapped_dek(48) | nonce(12) | ct+tag``.

Rotation (``ece keys rotate``): the KEKs form a keyring, the configured secret
(``ECE_CUSTODY_KEK`` or ``data/secrets/custody_kek``) plus the versions that
rotations add under ``<secrets_dir>/kek/``; the newest is *active* (it seals),
every one of them still opens. :func:`keyring` re-reads the folder on each call,
so a running API seals with a new version the moment a rotation writes it, and
keeps reading records that are not rewrapped yet: no restart, no downtime.
"""

import hashlib
import os
import re
import secrets as _secrets
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ece.settings import Settings

VERSION = b"\x01"
NONCE = 12
WRAPPED_DEK = 32 + 16


class DecryptionError(Exception):
    """Wrong KEK, wrong aad, or tampered ciphertext."""


class UnknownKeyId(DecryptionError):
    """A record names a key id that no configured KEK has (messages carry ids, never keys)."""


@dataclass(frozen=True)
class EnvelopeCipher:
    kek: bytes = field(repr=False)  # never in a repr, a log line or a traceback
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

    def rewrap(self, blob: bytes, new: "EnvelopeCipher", aad: bytes = b"") -> bytes:
        """The same envelope with its data key wrapped by ``new`` (payload bytes untouched).

        Only the 48-byte wrapped key changes, so rotating the KEK of a 5 MiB image
        costs two 32-byte AES-GCM operations, not a re-encryption.
        """
        if blob[:1] != VERSION or len(blob) < 1 + NONCE + WRAPPED_DEK + NONCE + 16:
            raise DecryptionError("unknown envelope format")
        wrap_nonce = blob[1 : 1 + NONCE]
        wrapped = blob[1 + NONCE : 1 + NONCE + WRAPPED_DEK]
        try:
            dek = AESGCM(self.kek).decrypt(wrap_nonce, wrapped, VERSION + aad)
        except Exception as exc:
            raise DecryptionError(f"KEK {self.key_id} does not open this envelope") from exc
        new_nonce = os.urandom(NONCE)
        rewrapped = AESGCM(new.kek).encrypt(new_nonce, dek, VERSION + aad)
        return VERSION + new_nonce + rewrapped + blob[1 + NONCE + WRAPPED_DEK :]


@dataclass(frozen=True)
class Keyring(EnvelopeCipher):
    """The active KEK (inherited fields: seals, ``key_id``) plus older ones that still open.

    A drop-in ``EnvelopeCipher``: ``seal`` uses the active KEK, ``open`` accepts a
    blob wrapped by any KEK of the ring (AES-GCM's tag makes trying each one safe;
    pass the record's ``key_id`` to go straight to the right one).
    """

    previous: tuple[EnvelopeCipher, ...] = ()

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Active first, then older versions newest first."""
        return (self.key_id, *(c.key_id for c in self.previous))

    def cipher_for(self, key_id: str) -> EnvelopeCipher:
        if key_id == self.key_id:
            return EnvelopeCipher(self.kek, self.key_id)
        for cipher in self.previous:
            if cipher.key_id == key_id:
                return cipher
        raise UnknownKeyId(
            f"record is wrapped by KEK {key_id}, which is not configured "
            f"(configured: {', '.join(self.key_ids)})"
        )

    def _candidates(self, key_id: str | None) -> list[EnvelopeCipher]:
        if key_id is not None:
            return [self.cipher_for(key_id)]
        return [EnvelopeCipher(self.kek, self.key_id), *self.previous]

    def open(self, blob: bytes, aad: bytes = b"", key_id: str | None = None) -> bytes:
        for cipher in self._candidates(key_id):
            try:
                return cipher.open(blob, aad)
            except DecryptionError:
                continue
        raise DecryptionError(
            "no configured KEK opens this envelope (wrong KEK, wrong record or tampered; "
            f"configured key ids: {', '.join(self.key_ids)})"
        )

    def rewrap_to_active(
        self, blob: bytes, aad: bytes = b"", key_id: str | None = None
    ) -> tuple[bytes, str]:
        """``(blob wrapped by the active KEK, active key id)``; a no-op when it already is."""
        active = EnvelopeCipher(self.kek, self.key_id)
        if key_id == self.key_id:
            return blob, self.key_id
        for cipher in self._candidates(key_id):
            try:
                if cipher.key_id == self.key_id:
                    cipher.open(blob, aad)  # already active: just prove it opens
                    return blob, self.key_id
                return cipher.rewrap(blob, active, aad), self.key_id
            except DecryptionError:
                continue
        raise DecryptionError(
            "no configured KEK opens this envelope; cannot rewrap "
            f"(configured key ids: {', '.join(self.key_ids)})"
        )


# --- the keyring on disk ------------------------------------------------------------

KEK_DIR = "kek"  # <secrets_dir>/kek/<version:06d>: one secret per line-free file
_VERSION_FILE = re.compile(r"^\d{6}$")


def kek_dir(settings: Settings) -> Path:
    return settings.secrets_dir / KEK_DIR


def kek_versions(settings: Settings) -> list[tuple[int, str]]:
    """``[(version, secret)]`` oldest first; version 0 is the configured ``custody_kek``."""
    versions = [(0, settings.secret("custody_kek", settings.custody_kek))]
    folder = kek_dir(settings)
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if _VERSION_FILE.match(path.name):
                versions.append((int(path.name), path.read_text().strip()))
    return versions


@lru_cache(maxsize=64)
def _derived(secrets_tuple: tuple[str, ...], purpose: str) -> Keyring:
    ciphers = [EnvelopeCipher.from_secret(s, purpose) for s in secrets_tuple]
    active, older = ciphers[-1], ciphers[-2::-1]
    unique = tuple(c for i, c in enumerate(older) if c.key_id not in
                   {active.key_id, *(o.key_id for o in older[:i])})
    return Keyring(kek=active.kek, key_id=active.key_id, previous=unique)


def keyring(settings: Settings, purpose: str) -> Keyring:
    """Every KEK for ``purpose`` (HKDF-separated), the newest version active."""
    return _derived(tuple(secret for _, secret in kek_versions(settings)), purpose)


def add_kek_version(settings: Settings, secret: str | None = None) -> int:
    """Write the next KEK version (random unless given) atomically, mode 0600; its number.

    From this moment every process seals new records with it. The folder lives
    under ``secrets_dir`` (``ECE_DATA_DIR``), outside git.
    """
    folder = kek_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    version = max(v for v, _ in kek_versions(settings)) + 1
    path = folder / f"{version:06d}"
    tmp = folder / f".{version:06d}.{_secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (secret or _secrets.token_urlsafe(48)).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # atomic and refuses to replace: two rotations cannot collide
    except FileExistsError:
        raise FileExistsError(f"KEK version {version} appeared concurrently; retry") from None
    finally:
        tmp.unlink()
    # Durable before anything is wrapped with it: a lost KEK would lose every record.
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return version


def custody_cipher(settings: Settings) -> EnvelopeCipher:
    """The cipher for custody secret keys (KEK from ``ECE_CUSTODY_KEK`` or data/secrets).

    A :class:`Keyring`: seals with the newest KEK version, opens with any of them.
    """
    return keyring(settings, "custody")


def image_cipher(settings: Settings) -> Keyring:
    """The cipher for stored card images (same KEK versions, HKDF purpose ``images``)."""
    return keyring(settings, "images")
