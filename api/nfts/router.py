"""``/cards/{id}/nft`` and ``/nfts/{id}``: request a mint (202, the saga worker does the
rest) and read an NFT's progress. Single reads carry an ETag of the body and honour
``If-None-Match`` with 304, so a client polling for ``minted`` costs one small answer."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response, status

from api.auth.deps import CurrentUser, SessionDep
from api.core.problems import problem_responses
from api.nfts import service
from api.nfts.models import Nft
from api.nfts.schemas import NftOut
from api.web.deps import UserCtx, etag_response
from api.web.idempotency import IdempotencyDep

router = APIRouter(tags=["nfts"])
API_PREFIX = "/api/v1"


def _body(nft: Nft) -> dict[str, Any]:
    return NftOut.model_validate(nft).model_dump(mode="json")


def _read_response(nft: Nft, if_none_match: str | None) -> Response:
    return etag_response(_body(nft), if_none_match)


@router.post(
    "/cards/{card_id}/nft",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=NftOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def mint_card(
    card_id: uuid.UUID, session: SessionDep, user: CurrentUser, ctx: UserCtx, idem: IdempotencyDep
) -> Response:
    """Mint the caller's card: 202 with the NFT in ``pending``; poll ``GET /nfts/{id}``.

    Allowed while the card is listed or in an auction (the token follows every
    ownership change). Honours ``Idempotency-Key``.
    """
    if idem.replay is not None:
        return idem.replay
    idem.answer(status.HTTP_202_ACCEPTED, _body)
    nft = await service.request_mint(session, ctx, user, card_id, idem)
    response = idem.response(nft)
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
