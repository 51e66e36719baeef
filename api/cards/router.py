"""``/cards``: catalogue endpoints. Single-card reads carry an ETag derived from the
row version (the same one Flink writes), honouring ``If-None-Match`` with 304."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status

from api.auth.deps import AdminUser
from api.cards import service
from api.cards.schemas import (
    CardCreate,
    CardHistoryOut,
    CardHistoryPage,
    CardOut,
    CardPage,
    CardStatus,
    CardUpdate,
    Rarity,
)
from api.core import etag
from api.core.db import SessionDep
from api.core.pagination import DEFAULT_LIMIT
from api.core.problems import problem_responses, validation_error
from api.core.uow import UowDep
from api.web.deps import Cache, Cursor, Limit, UserCtx

router = APIRouter(prefix="/cards", tags=["cards"])

CACHE_ASKED = "ece.card_cache_asked"
"""Scope key set by :mod:`api.cards.fast_read` when it already asked the cache."""


def _card_response(
    document: dict[str, Any], version: int, if_none_match: str | None = None,
    status_code: int = 200,
) -> Response:
    """The card document tagged with its row version (``ece.contracts.card_cache.etag``)."""
    return etag.conditional_json(
        document, if_none_match, resource_id=document["id"], revision=version,
        status_code=status_code,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CardOut,
    responses=problem_responses(401, 403, 422),
)
async def create_card(
    body: CardCreate, uow: UowDep, cache: Cache, admin: AdminUser, ctx: UserCtx
) -> Response:
    fields = body.model_dump(exclude={"owner_id"})
    card = await service.issue_card(uow, cache, ctx, admin, fields, body.owner_id)
    return _card_response(
        service.document_of(card), card.version, status_code=status.HTTP_201_CREATED
    )


@router.patch("/{card_id}", response_model=CardOut, responses=problem_responses(401, 403, 404, 422))
async def update_card(
    card_id: uuid.UUID,
    body: CardUpdate,
    uow: UowDep,
    cache: Cache,
    _admin: AdminUser,
    ctx: UserCtx,
) -> Response:
    try:
        changes = body.changes()
    except ValueError as exc:
        raise validation_error(str(exc)) from exc
    if not changes:
        raise validation_error("no writable field given")
    card = await service.update_card(uow, cache, ctx, card_id, changes)
    return _card_response(service.document_of(card), card.version)


@router.get("", response_model=CardPage, responses=problem_responses(422))
async def list_cards(
    session: SessionDep,
    owner_id: uuid.UUID | None = None,
    rarity: Rarity | None = None,
    set_name: Annotated[str | None, Query(max_length=200)] = None,
    status: CardStatus | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict[str, Any]:
    items, next_cursor = await service.list_cards(
        session,
        owner_id=owner_id,
        rarity=rarity,
        set_name=set_name,
        status=status,
        q=q,
        limit=limit,
        cursor=cursor,
    )
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/{card_id}",
    response_model=CardOut,
    responses={304: {"description": "Not modified (ETag matched)"}, **problem_responses(404, 422)},
)
async def get_card(
    card_id: uuid.UUID,
    cache: Cache,
    request: Request,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Public and hot: a cache hit sends the stored JSON bytes (no session, no parse).
    Most hits never get here: :mod:`api.cards.fast_read` answers them before routing,
    with :func:`card_response`; this route serves misses and whatever that skips."""
    body, version = await service.read_card_json(
        cache, card_id, cache_asked=request.scope.get(CACHE_ASKED, False)
    )
    return card_response(card_id, body, version, if_none_match)


def card_response(
    card_id: uuid.UUID, body: bytes, version: int, if_none_match: str | None
) -> Response:
    """The card document's answer: 200 with its bytes and ETag, or 304 when the client
    already holds this version (the tag is ``ece.contracts.card_cache.etag``)."""
    card_tag = etag.tag(card_id, version)
    if etag.matches(if_none_match, card_tag):
        return etag.not_modified(card_tag)
    return etag.tagged(Response(body, media_type="application/json"), card_tag)


@router.get(
    "/{card_id}/history", response_model=CardHistoryPage, responses=problem_responses(404, 422)
)
async def card_history(
    card_id: uuid.UUID,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict[str, Any]:
    rows, next_cursor = await service.card_history(session, card_id, limit=limit, cursor=cursor)
    return {
        "items": [CardHistoryOut.model_validate(r) for r in rows],
        "next_cursor": next_cursor,
    }
