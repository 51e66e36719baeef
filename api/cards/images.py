"""``PUT/GET /cards/{id}/image``: card images, sniffed, size-capped, encrypted at rest.

Upload path, in the order that makes a refused request cost (and change) nothing:
auth -> card exists -> owner or admin -> declared type plausible -> body read in
chunks and refused the moment it passes 5 MiB (413; never buffered beyond the
cap) -> bytes sniffed as PNG or JPEG with a structural check (415 otherwise,
whatever the header claimed; ``api.cards.sniff``) -> sealed with AES-256-GCM under
a fresh per-object data key wrapped by the images KEK (``api.cards.image_store``)
-> written to the object store under a new key -> card row locked, ownership
re-checked, ``image_object_key`` set (the trigger bumps ``version``), audit event,
COMMIT -> cache refreshed -> previous object deleted. Each upload gets a new
object key, so readers of the previous version keep working until the commit and
a failed commit only leaves an unreferenced object behind (deleted on the spot
by the unit of work's on-rollback hook).

``decode_object``, ``rewrap_image_object`` and ``load_image`` are re-exported here
for ``ece keys`` and the mint saga.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Header, Request, Response, status
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.chain import AuditContext, record
from api.auth.deps import CurrentUser
from api.cards.errors import card_not_owned, no_such_card
from api.cards.image_store import (
    OBJECT_PREFIX,
    decode_object,
    image_revision,
    load_image,
    rewrap_image_object,
    seal_image,
)
from api.cards.models import Card
from api.cards.service import refresh_after_commit
from api.cards.sniff import (
    JPEG,
    MAX_IMAGE_BYTES,
    PNG,
    declared_type,
    read_capped,
    sniff_image,
    unsupported,
)
from api.core import etag
from api.core.cache import CardCache
from api.core.crypto import image_cipher
from api.core.db import SessionDep
from api.core.problems import not_found, problem_responses
from api.core.uow import UnitOfWork, UowDep
from api.storage import ObjectStore, get_object_store
from api.users.models import User
from api.web.deps import Cache, UserCtx
from ece.settings import get_settings

__all__ = [
    "MAX_IMAGE_BYTES", "decode_object", "load_image", "rewrap_image_object", "router",
    "set_card_image",
]

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/cards", tags=["cards"])

NOT_YOURS = "only the card's owner or an admin may change its image"


# --- service ------------------------------------------------------------------------


def _may_change(user: User, owner_id: uuid.UUID) -> bool:
    return user.role == "admin" or owner_id == user.id


async def authorize_image_change(uow: UnitOfWork, user: User, card_id: uuid.UUID) -> None:
    """404/403 before a single body byte is read."""
    owner_id = await uow.session.scalar(select(Card.owner_id).where(Card.id == card_id))
    if owner_id is None:
        raise no_such_card()
    if not _may_change(user, owner_id):
        raise card_not_owned(NOT_YOURS)
    # End the read transaction (no writes; a commit keeps loaded objects usable) so no
    # connection is held while a slow client uploads.
    await uow.commit()


async def set_card_image(
    uow: UnitOfWork,
    cache: CardCache,
    store: ObjectStore,
    ctx: AuditContext,
    user: User,
    card_id: uuid.UUID,
    data: bytes,
    content_type: str,
) -> Card:
    """Store the sniffed image encrypted and point the card at it (one change in ``uow``)."""
    session = uow.session
    ring = image_cipher(get_settings())
    object_key = f"{OBJECT_PREFIX}{card_id}/{uuid.uuid4().hex}"
    sealed = await asyncio.to_thread(seal_image, ring, object_key, data, content_type)
    await store.put(object_key, sealed)

    async def drop_new() -> None:
        await store.delete(object_key)

    uow.on_rollback(drop_new)
    card = await session.scalar(select(Card).where(Card.id == card_id).with_for_update())
    if card is None:
        raise no_such_card()
    if not _may_change(user, card.owner_id):  # it may have been sold while the body uploaded
        raise card_not_owned(NOT_YOURS)
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
    refresh_after_commit(uow, cache, card)
    if previous and previous != object_key:

        async def drop_previous(old: str = previous) -> None:
            try:
                await store.delete(old)
            except Exception as exc:  # an orphan costs disk, never correctness
                log.warning("card_image_old_object_not_deleted", card_id=str(card_id),
                            error=str(exc))

        uow.after_commit(drop_previous)
    return card


async def read_card_image(session: AsyncSession, card_id: uuid.UUID) -> tuple[str, str]:
    """``(object key, etag)`` of the card's image; 404 for an unknown card or no image."""
    row = (
        await session.execute(select(Card.id, Card.image_object_key).where(Card.id == card_id))
    ).first()
    if row is None:
        raise no_such_card()
    if row.image_object_key is None:
        raise not_found("image")
    return row.image_object_key, etag.tag(card_id, image_revision(row.image_object_key))


# --- HTTP ---------------------------------------------------------------------------


def _store() -> ObjectStore:
    return get_object_store()


Store = Annotated[ObjectStore, Depends(_store)]

_BINARY: dict[str, Any] = {"schema": {"type": "string", "format": "binary"}}


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
    uow: UowDep,
    cache: Cache,
    store: Store,
    user: CurrentUser,
    ctx: UserCtx,
    content_type: Annotated[str | None, Header()] = None,
) -> Response:
    """Set the card's image (owner or admin); stored encrypted, type decided by the bytes."""
    await authorize_image_change(uow, user, card_id)
    declared = declared_type(content_type)
    data = await read_capped(request)
    sniffed = sniff_image(data)
    if sniffed is None:
        raise unsupported("the body is not a PNG or JPEG image")
    if declared is not None and declared != sniffed:
        raise unsupported(f"the body is {sniffed}, not {declared} as declared")
    await set_card_image(uow, cache, store, ctx, user, card_id, data, sniffed)
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
    headers = {"X-Content-Type-Options": "nosniff"}
    if etag.matches(if_none_match, tag):  # before decrypting anything
        return etag.not_modified(tag, headers)
    data, media_type = await load_image(store, object_key)
    return etag.tagged(Response(content=data, media_type=media_type), tag, headers)
