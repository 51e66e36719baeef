"""The platform's VAPID key pair: how push services know our pushes come from us.

Generated once (P-256) by whichever process needs it first, and never again:
browsers bind each subscription to the public key they were given
(``applicationServerKey``), so a new key would silently orphan every subscription.
The private key is sealed with the platform keyring (HKDF purpose ``vapid``, so
``ece keys rotate`` KEK versions apply, see :func:`rewrap`) and written atomically
and write-once to ``<secrets_dir>/vapid_private.sealed``: two processes starting
together both end up with the file that landed first. The public key is stored
beside the envelope in clear so the API can serve it without decrypting anything.

Exports for the API and the push sender:

* :func:`public_key_b64url` -> the browser's ``applicationServerKey`` (uncompressed
  P-256 point, base64url without padding), served at ``GET /push/vapid-public-key``;
* :func:`vapid_for_push` -> a ``py_vapid.Vapid02`` that signs the VAPID JWT
  (``pywebpush.webpush(..., vapid_private_key=vapid_for_push(settings))``).
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from py_vapid import Vapid02

from api.core import crypto
from ece.private_files import write_private
from ece.settings import Settings

log = structlog.get_logger("api.notifications.vapid")

PURPOSE = "vapid"
FILE_NAME = "vapid_private.sealed"
FILE_VERSION = 1
_AAD = b"ece:vapid-private-key"  # an envelope of another secret copied here fails to open

_lock = threading.Lock()
_cache: dict[Path, VapidKeys] = {}


class VapidKeyError(RuntimeError):
    """The stored VAPID key cannot be opened (wrong KEK, tampered or foreign file)."""


@dataclass(frozen=True)
class VapidKeys:
    private: ec.EllipticCurvePrivateKey
    public_b64url: str


def key_path(settings: Settings) -> Path:
    return settings.secrets_dir / FILE_NAME


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _public_of(private: ec.EllipticCurvePrivateKey) -> str:
    point = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return _b64url(point)


def _scalar(private: ec.EllipticCurvePrivateKey) -> bytes:
    return private.private_numbers().private_value.to_bytes(32, "big")


def _record(settings: Settings, private: ec.EllipticCurvePrivateKey) -> str:
    ring = crypto.keyring(settings, PURPOSE)
    return json.dumps({
        "version": FILE_VERSION,
        "curve": "P-256",
        "public": _public_of(private),
        "key_id": ring.key_id,
        "sealed": base64.b64encode(ring.seal(_scalar(private), _AAD)).decode(),
    })


def _load(settings: Settings, path: Path) -> VapidKeys:
    record = json.loads(path.read_text())
    try:
        scalar = crypto.keyring(settings, PURPOSE).open(
            base64.b64decode(record["sealed"]), _AAD, key_id=record.get("key_id"))
    except (crypto.DecryptionError, KeyError, ValueError) as exc:
        raise VapidKeyError(f"{path} cannot be opened with the configured KEKs: {exc}") from None
    private = ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())
    public = _public_of(private)
    if public != record.get("public"):
        raise VapidKeyError(f"{path}: the stored public key does not match the private key")
    return VapidKeys(private, public)


def vapid_keys(settings: Settings) -> VapidKeys:
    """The platform's VAPID pair, generated and stored on first use (then cached)."""
    path = key_path(settings)
    with _lock:
        cached = _cache.get(path)
        if cached is not None:
            return cached
        if not path.exists():
            private = ec.generate_private_key(ec.SECP256R1())
            if write_private(path, _record(settings, private), replace=False):
                log.warning("vapid_key_created", public=_public_of(private), path=str(path))
        keys = _load(settings, path)  # the file that landed first, ours or a peer's
        _cache[path] = keys
        return keys


def public_key_b64url(settings: Settings) -> str:
    """The ``applicationServerKey`` for ``pushManager.subscribe`` (base64url, no padding)."""
    return vapid_keys(settings).public_b64url


def vapid_for_push(settings: Settings) -> Vapid02:
    """A signer for pywebpush's ``vapid_private_key`` argument (RFC 8292 JWT, ES256)."""
    return Vapid02(vapid_keys(settings).private)


def rewrap(settings: Settings) -> bool:
    """Re-seal the key with the active KEK (for ``ece keys rotate``); True if it changed.

    The same key, a new envelope: subscriptions keep working. Renamed into place
    atomically, so a crash leaves the old envelope or the new one.
    """
    path = key_path(settings)
    if not path.exists():
        return False
    record = json.loads(path.read_text())
    if record.get("key_id") == crypto.keyring(settings, PURPOSE).key_id:
        return False
    keys = _load(settings, path)
    write_private(path, _record(settings, keys.private), replace=True)
    with _lock:
        _cache.pop(path, None)
    return True
