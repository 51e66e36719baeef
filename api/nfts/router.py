"""``/cards/{id}/nft`` and ``/nfts/{id}``: request a mint (202, the saga worker does the
rest) and read an NFT's progress. Single reads carry an ETag of the body and honour
``If-None-Match`` with 304, so a client polling for ``minted`` costs one small answer."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Response, status

from api.auth.deps import CurrentUser
from api.core import etag
from api.core.db import SessionDep
from api.core.problems import problem_responses
from api.nfts import service
from api.nfts.models import Nft
from api.nfts.schemas import NftOut
from api.web.deps import UserCtx
from api.web.idempotency import IdempotentWrite

router = APIRouter(tags=["nfts"])
API_PREFIX = "/api/v1"


def _read_response(nft: Nft, if_none_match: str | None) -> Response:
    return etag.conditional_json(NftOut.model_validate(nft), if_none_match, resource_id=nft.id)


@router.post(
    "/cards/{card_id}/nft",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=NftOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def mint_card(
    card_id: uuid.UUID, uow: IdempotentWrite, user: CurrentUser, ctx: UserCtx
) -> Response:
    """Mint the caller's card: 202 with the NFT in ``pending``; poll ``GET /nfts/{id}``.

    Allowed while the card is listed or in an auction (the token follows every
    ownership change). Honours ``Idempotency-Key``.
    """
    nft = await service.request_mint(uow, ctx, user, card_id)
    response = uow.reply(NftOut.model_validate(nft), status.HTTP_202_ACCEPTED)
    response.headers["Location"] = f"{API_PREFIX}/nfts/{nft.id}"
    return response


@router.get("/cards/{card_id}/nft", response_model=NftOut, responses=problem_responses(404, 422))
async def card_nft(
    card_id: uuid.UUID,
    session: SessionDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    return _read_response(await service.get_card_nft(session, card_id), if_none_match)


@router.get("/nfts/{nft_id}", response_model=NftOut, responses=problem_responses(404, 422))
async def get_nft(
    nft_id: uuid.UUID,
    session: SessionDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    return _read_response(await service.get_nft(session, nft_id), if_none_match)
