"""Card images at rest: the encrypted object format, sealing, opening, key rotation.

Object format: ``MAGIC | u16 header length | JSON header | envelope``. The header
carries the KEK ``key_id`` (what ``ece keys rotate`` rewraps) and the content
type; the envelope's AAD is the object key, so an object copied under another
card's key does not decrypt. Each upload gets a new object key, which therefore
identifies the bytes (the image's ETag revision).
"""

from __future__ import annotations

import asyncio
import json
import struct
from dataclasses import dataclass

from api.core.crypto import Keyring, image_cipher
from api.core.problems import not_found
from api.storage import ObjectNotFound, ObjectStore
from ece.settings import Settings, get_settings

MAGIC = b"ECEIMG1\n"
OBJECT_PREFIX = "cards/"


@dataclass(frozen=True)
class StoredImage:
    key_id: str
    content_type: str
    envelope: bytes


def _aad(object_key: str) -> bytes:
    return b"ece:card-image:" + object_key.encode()


def encode_object(image: StoredImage) -> bytes:
    header = json.dumps(
        {"key_id": image.key_id, "content_type": image.content_type}, separators=(",", ":")
    ).encode()
    return MAGIC + struct.pack(">H", len(header)) + header + image.envelope


def decode_object(raw: bytes) -> StoredImage:
    if not raw.startswith(MAGIC) or len(raw) < len(MAGIC) + 2:
        raise ValueError("not an ECE image object")
    (length,) = struct.unpack(">H", raw[len(MAGIC) : len(MAGIC) + 2])
    start = len(MAGIC) + 2
    header = json.loads(raw[start : start + length])
    return StoredImage(header["key_id"], header["content_type"], raw[start + length :])


def seal_image(ring: Keyring, object_key: str, data: bytes, content_type: str) -> bytes:
    return encode_object(StoredImage(ring.key_id, content_type, ring.seal(data, _aad(object_key))))


def open_image(ring: Keyring, object_key: str, raw: bytes) -> tuple[bytes, str]:
    """(plaintext, content type); the header's key id picks the KEK (any ring version)."""
    stored = decode_object(raw)
    plaintext = ring.open(stored.envelope, _aad(object_key), key_id=stored.key_id)
    return plaintext, stored.content_type


async def rewrap_image_object(store: ObjectStore, ring: Keyring, object_key: str) -> bool:
    """Rewrap one stored image under the ring's active KEK; False if already there or gone.

    The payload ciphertext is kept; only the wrapped data key and the header's key id
    change, written back atomically, so a concurrent GET reads the old or the new
    object and both decrypt.
    """
    try:
        raw = await store.get(object_key)
    except ObjectNotFound:
        return False  # replaced by a newer upload meanwhile: nothing to rotate
    stored = decode_object(raw)
    if stored.key_id == ring.key_id:
        return False
    envelope, key_id = ring.rewrap_to_active(stored.envelope, _aad(object_key), stored.key_id)
    await store.put(object_key, encode_object(StoredImage(key_id, stored.content_type, envelope)))
    return True


def image_revision(object_key: str) -> str:
    """The ETag revision of a stored image: its object key's unique part."""
    return "img-" + object_key.rsplit("/", 1)[-1]


async def load_image(
    store: ObjectStore, object_key: str, settings: Settings | None = None
) -> tuple[bytes, str]:
    """(plaintext, content type) of a stored image (the mint saga uses it too); 404 if gone."""
    try:
        raw = await store.get(object_key)
    except ObjectNotFound:
        raise not_found("image") from None
    ring = image_cipher(settings or get_settings())
    return await asyncio.to_thread(open_image, ring, object_key, raw)
