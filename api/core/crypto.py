"""AES-256-GCM envelope encryption for secrets at rest (custody keys, card images).

Each record gets its own random 256-bit data key; the data key is wrapped with the
key-encryption key (KEK) from settings. Why an envelope: rotating the KEK means
re-wrapping 60-byte data keys instead of re-encrypting every payload, and the
``key_id`` stored beside each record says which KEK wrapped it. The caller's
``aad`` (e.g. the owning user id) is bound into both layers so a ciphertext copied
to another record fails to decrypt.

Blob layout (version 1): ``0x01 | wrap_nonce(12) | wrapped_dek(48) | nonce(12) | ct+tag``.

Rotation (``ece keys rotate``): the KEKs form a keyring, the configured secret
(``ECE_CUSTODY_KEK`` or ``data/secrets/custody_kek``) plus later versions, either
configured (``ECE_KEK_VERSIONS`` / ``ECE_KEYRING_FILE``, the only source in prod)
or added by rotations under ``<secrets_dir>/kek/``; the newest is *active* (it
seals), every one of them still opens. :func:`keyring` re-reads them on each call,
so a running API seals with a new version the moment a rotation writes it, and
keeps reading records that are not rewrapped yet: no restart, no downtime.
"""

import hashlib
import json
import os
import re
import secrets as _secrets
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ece.private_files import write_private
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


# --- where the KEK versions come from ------------------------------------------------
#
# Version 0 is ``ECE_CUSTODY_KEK``. Later versions come from exactly one source:
# - explicit configuration, which a secrets manager fills: ``ECE_KEK_VERSIONS`` (a JSON
#   object ``{"1": "<secret>", "2": "<secret>"}``) and/or ``ECE_KEYRING_FILE`` (a file
#   holding the same object, re-read on every use so a new version needs no restart);
# - or, outside prod and only when nothing explicit is configured, the files that
#   ``ece keys rotate`` writes under ``<secrets_dir>/kek/``.
# ``ECE_ENV=prod`` never generates nor reads a KEK from a local file it wrote itself.

KEK_DIR = "kek"  # <secrets_dir>/kek/<version:06d>: one secret per line-free file
_VERSION_FILE = re.compile(r"^\d{6}$")
_VERSION_KEY = re.compile(r"^[1-9]\d{0,8}$")


class KeyringConfigError(RuntimeError):
    """The KEK versions are configured wrongly (messages name settings, never secrets)."""


def kek_dir(settings: Settings) -> Path:
    return settings.secrets_dir / KEK_DIR


def explicit_keyring(settings: Settings) -> bool:
    """Whether KEK versions come from ``ECE_KEK_VERSIONS`` / ``ECE_KEYRING_FILE``."""
    return settings.kek_versions is not None or settings.keyring_file is not None


def local_kek_refusal(settings: Settings) -> str | None:
    """Why ``ece keys rotate`` may not generate a KEK version file here (None: it may)."""
    if settings.env == "prod":
        where = "ECE_ENV=prod"
    elif explicit_keyring(settings):
        where = "an explicit keyring (ECE_KEK_VERSIONS / ECE_KEYRING_FILE)"
    else:
        return None
    return (f"{where} refuses to generate KEK files: add the next version to "
            "ECE_KEYRING_FILE or ECE_KEK_VERSIONS through your secrets manager, then run "
            "`ece keys rewrap`")


def _parse_versions(raw: str, source: str) -> dict[int, str]:
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise KeyringConfigError(f"{source} is not JSON: expected {{\"1\": \"<secret>\", ...}}"
                                 ) from None
    if not isinstance(parsed, dict):
        raise KeyringConfigError(f"{source} must be a JSON object {{\"<version>\": \"<secret>\"}}")
    versions: dict[int, str] = {}
    for key, value in parsed.items():
        if not _VERSION_KEY.match(str(key)):
            raise KeyringConfigError(
                f"{source}: version {key!r} is not a positive integer (0 is ECE_CUSTODY_KEK)")
        if not isinstance(value, str) or not value.strip():
            raise KeyringConfigError(f"{source}: version {key} must be a non-empty string")
        versions[int(key)] = value.strip()
    return versions


def _configured_versions(settings: Settings) -> dict[int, str]:
    versions: dict[int, str] = {}
    sources: list[tuple[str, str]] = []
    if settings.kek_versions is not None:
        sources.append(("ECE_KEK_VERSIONS", settings.kek_versions.get_secret_value()))
    if settings.keyring_file is not None:
        name = f"ECE_KEYRING_FILE ({settings.keyring_file})"
        try:
            sources.append((name, settings.keyring_file.read_text()))
        except OSError as exc:
            raise KeyringConfigError(f"{name} cannot be read: {exc.strerror}") from None
    for source, raw in sources:
        for version, secret in _parse_versions(raw, source).items():
            if versions.get(version, secret) != secret:
                raise KeyringConfigError(
                    f"KEK version {version} differs between ECE_KEK_VERSIONS and ECE_KEYRING_FILE")
            versions[version] = secret
    return versions


def _local_versions(settings: Settings) -> dict[int, str]:
    folder = kek_dir(settings)
    if not folder.is_dir():
        return {}
    return {int(p.name): p.read_text().strip()
            for p in sorted(folder.iterdir()) if _VERSION_FILE.match(p.name)}


def kek_versions(settings: Settings) -> list[tuple[int, str]]:
    """``[(version, secret)]`` oldest first; version 0 is the configured ``custody_kek``.

    Raises :class:`KeyringConfigError` when the configuration is ambiguous or, in prod,
    incomplete, rather than guessing which KEK seals.
    """
    explicit = _configured_versions(settings) if explicit_keyring(settings) else {}
    local = _local_versions(settings)
    if local and (explicit_keyring(settings) or settings.env == "prod"):
        why = ("ECE_ENV=prod takes KEK versions from ECE_KEK_VERSIONS / ECE_KEYRING_FILE only"
               if settings.env == "prod" else
               "KEK versions are configured explicitly (ECE_KEK_VERSIONS / ECE_KEYRING_FILE)")
        raise KeyringConfigError(
            f"{why}, but {kek_dir(settings)} holds file-based versions "
            f"{', '.join(str(v) for v in sorted(local))}: move them into the configured keyring "
            "(same version numbers), then delete that folder")
    versions: list[tuple[int, str]] = []
    if settings.custody_kek is not None or not (explicit or settings.env == "prod"):
        versions.append((0, settings.secret("custody_kek", settings.custody_kek)))
    versions.extend(sorted({**local, **explicit}.items()))
    if not versions:
        raise KeyringConfigError(
            "no KEK configured: set ECE_CUSTODY_KEK and/or ECE_KEK_VERSIONS / ECE_KEYRING_FILE "
            "(docs/operations.md)")
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
    under ``secrets_dir`` (``ECE_DATA_DIR``), outside git. Refused in prod and when
    the versions are configured explicitly: there a new version is added to the
    keyring the secrets manager fills, and ``ece keys rewrap`` moves records to it.
    """
    refusal = local_kek_refusal(settings)
    if refusal:
        raise KeyringConfigError(refusal)
    folder = kek_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    version = max(v for v, _ in kek_versions(settings)) + 1
    # A link never replaces: two rotations cannot collide. Durable (file and folder
    # fsynced) before anything is wrapped with it: a lost KEK would lose every record.
    if not write_private(folder / f"{version:06d}", secret or _secrets.token_urlsafe(48)):
        raise FileExistsError(f"KEK version {version} appeared concurrently; retry")
    return version


def custody_cipher(settings: Settings) -> EnvelopeCipher:
    """The cipher for custody secret keys (KEK from ``ECE_CUSTODY_KEK`` or data/secrets).

    A :class:`Keyring`: seals with the newest KEK version, opens with any of them.
    """
    return keyring(settings, "custody")


def image_cipher(settings: Settings) -> Keyring:
    """The cipher for stored card images (same KEK versions, HKDF purpose ``images``)."""
    return keyring(settings, "images")
