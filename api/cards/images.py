"""``PUT/GET /cards/{id}/image``: card images, sniffed, size-capped, encrypted at rest.

Upload path, in the order that makes a refused request cost (and change) nothing:
auth -> card exists -> owner or admin -> declared type plausible -> body read in
chunks and refused the moment it passes 5 MiB (413; never buffered beyond the
cap) -> bytes sniffed as PNG or JPEG with a structural check (415 otherwise,
whatever the header claimed) -> sealed with AES-256-GCM under a fresh per-object
data key wrapped by the images KEK -> written to the object store under a new key
-> card row locked, ownership re-checked, ``image_object_key`` set (the trigger
bumps ``version``), audit event, COMMIT -> cache refreshed -> previous object
deleted. Each upload gets a new object key, so readers of the previous version
keep working until the commit and a failed commit only leaves an unreferenced
object behind (deleted on the spot).

Object format: ``MAGIC | u16 header length | JSON header | envelope``. The header
carries the KEK ``key_id`` (what ``ece keys rotate`` rewraps) and the content
type; the envelope's AAD is the object key, so an object copied under another
card's key does not decrypt.
"""

from __future__ import annotations

import asyncio
import json
import struct
import uuid
import zlib
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Header, Request, Response, status
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.chain import AuditContext, record
from api.auth.deps import CurrentUser, SessionDep
from api.cards.models import Card
from api.cards.service import document_of
from api.core.cache import CardCache
from api.core.crypto import Keyring, image_cipher
from api.core.problems import Problem, forbidden, not_found, problem_responses
from api.storage import ObjectNotFound, ObjectStore, get_object_store
from api.users.models import User
from api.web.deps import Cache, UserCtx
from ece.settings import Settings, get_settings

log = structlog.get_logger(__name__)

MAX_IMAGE_BYTES = 5 * 1024 * 1024
PNG = "image/png"
JPEG = "image/jpeg"
# Declared types we accept as "the client says it is an image"; the bytes decide which.
DECLARED = {PNG: PNG, JPEG: JPEG, "image/jpg": JPEG, "image/pjpeg": JPEG}
UNDECLARED = {"", "application/octet-stream"}

MAGIC = b"ECEIMG1\n"
OBJECT_PREFIX = "cards/"

router = APIRouter(prefix="/cards", tags=["cards"])


# --- content sniffing ---------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_COLOR_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}
JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _is_png(data: bytes) -> bool:
    """Signature, IHDR first and sane, every chunk's CRC right, IDAT present, IEND last."""
    if not data.startswith(PNG_SIGNATURE):
        return False
    pos, first, seen_idat = len(PNG_SIGNATURE), True, False
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > len(data) or not kind.isalpha():
            return False
        if zlib.crc32(data[pos + 4 : end - 4]) != int.from_bytes(data[end - 4 : end], "big"):
            return False
        if first:
            if kind != b"IHDR" or length != 13:
                return False
            width, height, depth, color = struct.unpack(">IIBB", data[pos + 8 : pos + 18])
            if not (width and height) or depth not in PNG_COLOR_DEPTHS.get(color, set()):
                return False
            first = False
        elif kind == b"IDAT":
            seen_idat = True
        elif kind == b"IEND":
            return seen_idat and end == len(data)
        pos = end
    return False


def _is_jpeg(data: bytes) -> bool:
    """SOI, well-formed marker segments up to SOS with a sane SOF before it, EOI at the end."""
    if len(data) < 4 or data[:3] != b"\xff\xd8\xff":
        return False
    pos, seen_sof = 2, False
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone markers
            pos += 2
            continue
        if marker in (0xD8, 0xD9):  # a second SOI or an EOI before any scan
            return False
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > len(data):
            return False
        if marker in JPEG_SOF:
            if length < 8:
                return False
            height, width, components = struct.unpack(">HHB", data[pos + 5 : pos + 10])
            if not (height and width) or not 1 <= components <= 4:
                return False
            seen_sof = True
        if marker == 0xDA:  # start of scan: the entropy-coded data follows until EOI
            end = len(data)
            while end > pos and data[end - 1] == 0:  # some writers pad with NULs
                end -= 1
            return seen_sof and data[end - 2 : end] == b"\xff\xd9"
        pos += 2 + length
    return False


def sniff_image(data: bytes) -> str | None:
    """``image/png``, ``image/jpeg`` or None, from the bytes alone."""
    if _is_png(data):
        return PNG
    if _is_jpeg(data):
        return JPEG
    return None


def _declared_type(content_type: str | None) -> str | None:
    """The header's claim: a supported type, None for "not said", else a 415."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in UNDECLARED:
        return None
    if media in DECLARED:
        return DECLARED[media]
    raise unsupported(f"{media or 'this type'} is not accepted; send image/png or image/jpeg")


def unsupported(detail: str) -> Problem:
    return Problem(415, "unsupported_media_type", detail)


def too_large() -> Problem:
    return Problem(413, "payload_too_large", f"images are at most {MAX_IMAGE_BYTES} bytes")


async def read_capped(request: Request, limit: int = MAX_IMAGE_BYTES) -> bytes:
    """The request body, refused (413) as soon as it passes ``limit``: never buffered beyond.

    A declared ``Content-Length`` above the limit is refused before reading anything.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large()
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > limit:
            raise too_large()
        body += chunk
    return bytes(body)


# --- the encrypted object format ----------------------------------------------------


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


def image_etag(object_key: str) -> str:
    """Each upload has its own object key, so the key identifies the bytes."""
    return f'"img-{object_key.rsplit("/", 1)[-1]}"'


# --- service ------------------------------------------------------------------------


def _may_change(user: User, card: Card) -> bool:
    return user.role == "admin" or card.owner_id == user.id


def _check_may_change(user: User, card: Card) -> None:
    if not _may_change(user, card):
        raise forbidden("only the card's owner or an admin may change its image", "card_not_owned")


async def authorize_image_change(session: AsyncSession, user: User, card_id: uuid.UUID) -> None:
    """404/403 before a single body byte is read."""
    owner_id = await session.scalar(select(Card.owner_id).where(Card.id == card_id))
    if owner_id is None:
        raise not_found("card")
    if user.role != "admin" and owner_id != user.id:
        raise forbidden("only the card's owner or an admin may change its image", "card_not_owned")
    # End the read transaction (no writes; commit keeps loaded objects usable) so no
    # connection is held while a slow client uploads.
    await session.commit()


async def set_card_image(
    session: AsyncSession,
    cache: CardCache,
    store: ObjectStore,
    ctx: AuditContext,
    user: User,
    card_id: uuid.UUID,
    data: bytes,
    content_type: str,
) -> Card:
    """Store the sniffed image encrypted and point the card at it (one committed change)."""
    ring = image_cipher(get_settings())
    object_key = f"{OBJECT_PREFIX}{card_id}/{uuid.uuid4().hex}"
    sealed = await asyncio.to_thread(seal_image, ring, object_key, data, content_type)
    await store.put(object_key, sealed)
    committed = False
    try:
        card = await session.scalar(select(Card).where(Card.id == card_id).with_for_update())
        if card is None:
            raise not_found("card")
        _check_may_change(user, card)  # it may have been sold while the body uploaded
        previous = card.image_object_key
        card.image_object_key = object_key
        await session.flush()
        await record(
            session,
            ctx,
            "card.image_set",
            "card",
            card.id,
            {"content_type": content_type, "bytes": len(data), "key_id": ring.key_id},
        )
        await session.commit()
        committed = True
    finally:
        if not committed:
            await session.rollback()
            await store.delete(object_key)
    await cache.put_after_commit(document_of(card), card.version)
    if previous and previous != object_key:
        try:
            await store.delete(previous)
        except Exception as exc:  # an orphan costs disk, never correctness
            log.warning("card_image_old_object_not_deleted", card_id=str(card_id), error=str(exc))
    return card


async def read_card_image(session: AsyncSession, card_id: uuid.UUID) -> tuple[str, str]:
    """``(object key, etag)`` of the card's image; 404 for an unknown card or no image."""
    row = (
        await session.execute(select(Card.id, Card.image_object_key).where(Card.id == card_id))
    ).first()
    if row is None:
        raise not_found("card")
    if row.image_object_key is None:
        raise not_found("image")
    return row.image_object_key, image_etag(row.image_object_key)


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


# --- HTTP ---------------------------------------------------------------------------


def _store() -> ObjectStore:
    return get_object_store()


Store = Annotated[ObjectStore, Depends(_store)]

_BINARY: dict[str, Any] = {"schema": {"type": "string", "format": "binary"}}


def _etag_matches(header: str | None, tag: str) -> bool:
    if not header:
        return False
    candidates = [part.strip() for part in header.split(",")]
    return "*" in candidates or any(c.removeprefix("W/") == tag for c in candidates)


@router.put(
    "/{card_id}/image",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 413, 415, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": f"raw PNG or JPEG bytes, at most {MAX_IMAGE_BYTES} bytes",
            "content": {PNG: _BINARY, JPEG: _BINARY},
        }
    },
)
async def put_card_image(
    card_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    cache: Cache,
    store: Store,
    user: CurrentUser,
    ctx: UserCtx,
    content_type: Annotated[str | None, Header()] = None,
) -> Response:
    """Set the card's image (owner or admin); stored encrypted, type decided by the bytes."""
    await authorize_image_change(session, user, card_id)
    declared = _declared_type(content_type)
    data = await read_capped(request)
    sniffed = sniff_image(data)
    if sniffed is None:
        raise unsupported("the body is not a PNG or JPEG image")
    if declared is not None and declared != sniffed:
        raise unsupported(f"the body is {sniffed}, not {declared} as declared")
    await set_card_image(session, cache, store, ctx, user, card_id, data, sniffed)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{card_id}/image",
    response_class=Response,
    responses={
        200: {"description": "the image bytes", "content": {PNG: _BINARY, JPEG: _BINARY}},
        304: {"description": "Not modified (ETag matched)"},
        **problem_responses(404, 422),
    },
)
async def get_card_image(
    card_id: uuid.UUID,
    session: SessionDep,
    store: Store,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The decrypted image with its type and an ETag (304 on ``If-None-Match``)."""
    object_key, tag = await read_card_image(session, card_id)
    headers = {"ETag": tag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if _etag_matches(if_none_match, tag):
        return Response(status_code=304, headers=headers)
    data, media_type = await load_image(store, object_key)
    return Response(content=data, media_type=media_type, headers=headers)
