"""NFT rules: the mint request (API) and reads. Postgres is the truth; the chain and
Arweave follow it. The database side of the workers lives in ``api.nfts.saga``
(mint saga) and ``api.nfts.transfers`` (chain transfers); both are re-exported
here for the workers, which use them as ``service.<name>``.

The mint request allows cards that are listed or in an auction: the token always
follows ownership (the chain transfer worker moves it when a sale or an auction
settles), so minting does not interfere with the market and there is no reason to
make the owner cancel a listing first.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit.chain import AuditContext, record
from api.cards.errors import card_not_owned, no_such_card
from api.cards.models import Card
from api.cards.ownership import lock_cards
from api.core.problems import not_found
from api.core.uow import UnitOfWork
from api.nfts.errors import PermanentMintError, already_minted
from api.nfts.models import Nft
from api.nfts.saga import (
    ACTIVE_STATUSES,
    MAX_ERROR_LENGTH,
    OPEN_TX_STATUSES,
    MintIntent,
    SagaView,
    active_nfts,
    prepare_mint,
    record_failed,
    record_metadata_uri,
    record_minted,
    record_signature,
    saga_view,
    transaction_signature,
)
from api.nfts.transfers import (
    TRANSFER_REASONS,
    TransferStep,
    card_of_nft,
    cards_out_of_sync,
    next_transfer,
    record_transfer,
    record_transfer_failed,
)
from api.users.models import User

__all__ = [
    "ACTIVE_STATUSES", "MAX_ERROR_LENGTH", "OPEN_TX_STATUSES", "TRANSFER_REASONS",
    "MintIntent", "PermanentMintError", "SagaView", "TransferStep",
    "active_nfts", "card_of_nft", "cards_out_of_sync", "get_card_nft", "get_nft",
    "next_transfer", "prepare_mint", "record_failed", "record_metadata_uri",
    "record_minted", "record_signature", "record_transfer", "record_transfer_failed",
    "request_mint", "saga_view", "transaction_signature",
]


async def request_mint(
    uow: UnitOfWork,
    ctx: AuditContext,
    user: User,
    card_id: uuid.UUID,
) -> Nft:
    """Create the NFT in ``pending`` (the saga worker takes it from there), in ``uow``.

    The card row is locked first (after the idempotency key, per the global lock
    order) so the ownership check cannot race a sale; the unique ``nfts.card_id``
    settles two concurrent requests, the loser gets 409 ``already_minted``. A
    ``failed`` NFT may be requested again: the same row goes back to ``pending``
    and the saga resumes with what it already did (the upload, the mint address).
    """
    session = uow.session
    cards = await lock_cards(session, [card_id])
    if not cards:
        raise no_such_card()
    if cards[0].owner_id != user.id:
        raise card_not_owned("only the card's owner can mint it")
    nft = await session.scalar(select(Nft).where(Nft.card_id == card_id).with_for_update())
    retry = nft is not None
    if nft is not None:
        if nft.status != "failed":
            raise already_minted(f"this card's NFT is already {nft.status}")
        nft.status, nft.error = "pending", None
        await session.flush()
    else:
        nft = Nft(id=uuid.uuid4(), card_id=card_id, status="pending")
        session.add(nft)
        try:
            await session.flush()
        except IntegrityError as exc:
            raise already_minted("this card already has an NFT") from exc
    await record(
        session, ctx, "nft.mint_requested", "nft", nft.id, {"card_id": str(card_id), "retry": retry}
    )
    return nft


async def get_nft(session: AsyncSession, nft_id: uuid.UUID) -> Nft:
    nft = await session.get(Nft, nft_id)
    if nft is None:
        raise not_found("nft")
    return nft


async def get_card_nft(session: AsyncSession, card_id: uuid.UUID) -> Nft:
    nft = await session.scalar(select(Nft).where(Nft.card_id == card_id))
    if nft is None:
        if await session.get(Card, card_id) is None:
            raise no_such_card()
        raise not_found("nft")
    return nft
