"""The database side of the NFT mint saga (``api.workers.mint_saga``).

Every function is one short transaction committed through ``api.core.uow.commit``
(or a read that ends its transaction): the worker never holds a transaction open
across a network call. It records what it is about to do, does it, then records
that it was done, so a worker killed at any point resumes from the database alone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.cards.models import Card, CardHistory
from api.core.uow import commit
from api.nfts.errors import PermanentMintError
from api.nfts.models import Nft, NftTransaction
from api.users.models import User

ACTIVE_STATUSES = ("pending", "uploading", "minting")
OPEN_TX_STATUSES = ("pending", "submitted")
MAX_ERROR_LENGTH = 2000


@dataclass(frozen=True)
class SagaView:
    """One NFT and its card, read in one snapshot (plain values: no lazy loads later)."""

    nft_id: uuid.UUID
    card_id: uuid.UUID
    status: str
    metadata_uri: str | None
    card: dict[str, Any]


async def saga_view(session: AsyncSession, nft_id: uuid.UUID) -> SagaView | None:
    row = (
        await session.execute(select(Nft, Card).join(Card, Card.id == Nft.card_id).where(
            Nft.id == nft_id
        ))
    ).first()
    view = None
    if row is not None:
        nft, card = row
        fields = ("id", "name", "set_name", "number", "rarity", "edition", "attributes",
                  "image_object_key")
        view = SagaView(
            nft.id, nft.card_id, nft.status, nft.metadata_uri,
            {f: getattr(card, f) for f in fields},
        )
    await session.rollback()  # end the read transaction: nothing is held across network calls
    return view


async def record_metadata_uri(session: AsyncSession, nft_id: uuid.UUID, uri: str) -> bool:
    """``pending|uploading -> uploading`` with the signed upload's URI, *before* it is posted.

    One write for both: the state change and the fact a resumed saga needs (which
    transaction to look for on the gateway). False when the NFT left those states.
    """
    moved = await session.scalar(
        update(Nft)
        .where(Nft.id == nft_id, Nft.status.in_(("pending", "uploading")))
        .values(status="uploading", metadata_uri=uri)
        .returning(Nft.id)
    )
    await commit(session)
    return moved is not None


@dataclass(frozen=True)
class MintIntent:
    """The mint as decided before sending: who receives it, and the signature once sent."""

    tx_id: uuid.UUID
    to_address: str
    signature: str | None
    metadata_uri: str


async def prepare_mint(session: AsyncSession, nft_id: uuid.UUID) -> MintIntent | None:
    """``uploading -> minting`` and the NFT's ``mint`` transaction row, in one write.

    The row is created on first call with the owner *now*: recording the recipient
    before sending makes a resumed saga mint to the same address it may already
    have minted to, even if the card was sold meanwhile. ``card_history_id`` is the
    history row that made that user the owner: rows after it are ownership changes
    the chain transfer worker must replay. None when the NFT is no longer active.
    """
    nft = await session.scalar(select(Nft).where(Nft.id == nft_id).with_for_update())
    if nft is None or nft.status not in ("uploading", "minting"):
        await session.rollback()
        return None
    if nft.metadata_uri is None:
        await session.rollback()
        raise PermanentMintError("no metadata was uploaded before minting")
    nft.status = "minting"
    tx = await session.scalar(
        select(NftTransaction).where(NftTransaction.nft_id == nft_id, NftTransaction.kind == "mint")
    )
    if tx is None:
        owner = (
            await session.execute(
                select(Card.owner_id, User.custody_address)
                .join(User, User.id == Card.owner_id)
                .where(Card.id == nft.card_id)
            )
        ).one()
        if owner.custody_address is None:
            await session.rollback()
            raise PermanentMintError(f"the card's owner {owner.owner_id} has no custody address")
        anchor = await session.scalar(
            select(CardHistory.id)
            .where(CardHistory.card_id == nft.card_id, CardHistory.to_user_id == owner.owner_id)
            .order_by(CardHistory.at.desc(), CardHistory.id.desc())
            .limit(1)
        )
        tx = NftTransaction(
            id=uuid.uuid4(),
            nft_id=nft_id,
            kind="mint",
            to_address=owner.custody_address,
            card_history_id=anchor,
            status="pending",
        )
        session.add(tx)
    elif tx.status == "failed":  # a failed NFT requested again: same intent, new attempt
        tx.status = "pending"
    await session.flush()
    intent = MintIntent(tx.id, tx.to_address, tx.signature, nft.metadata_uri)
    await commit(session)
    return intent


async def record_signature(session: AsyncSession, tx_id: uuid.UUID, signature: str) -> None:
    """The signature of a transaction about to be sent (so a crash cannot lose it)."""
    await session.execute(
        update(NftTransaction)
        .where(NftTransaction.id == tx_id)
        .values(signature=signature, status="submitted")
    )
    await commit(session)


async def transaction_signature(session: AsyncSession, tx_id: uuid.UUID) -> str | None:
    signature = await session.scalar(
        select(NftTransaction.signature).where(NftTransaction.id == tx_id)
    )
    await session.rollback()
    return signature


async def record_minted(
    session: AsyncSession,
    nft_id: uuid.UUID,
    tx_id: uuid.UUID,
    mint_address: str,
    signature: str | None,
    owner_address: str,
) -> bool:
    """``minting -> minted`` with the chain's facts, and the mint transaction confirmed."""
    moved = await session.scalar(
        update(Nft)
        .where(Nft.id == nft_id, Nft.status == "minting")
        .values(
            status="minted",
            mint_address=mint_address,
            tx_signature=signature,
            owner_address=owner_address,
            error=None,
        )
        .returning(Nft.id)
    )
    values: dict[str, Any] = {"status": "confirmed"}
    if signature is not None:
        values["signature"] = signature
    await session.execute(update(NftTransaction).where(NftTransaction.id == tx_id).values(**values))
    await commit(session)
    return moved is not None


async def record_failed(session: AsyncSession, nft_id: uuid.UUID, error: str) -> bool:
    """Any active state -> ``failed`` with the reason; an unsent mint row fails with it."""
    moved = await session.scalar(
        update(Nft)
        .where(Nft.id == nft_id, Nft.status.in_(ACTIVE_STATUSES))
        .values(status="failed", error=error[:MAX_ERROR_LENGTH])
        .returning(Nft.id)
    )
    await session.execute(
        update(NftTransaction)
        .where(
            NftTransaction.nft_id == nft_id,
            NftTransaction.kind == "mint",
            NftTransaction.status.in_(OPEN_TX_STATUSES),
        )
        .values(status="failed")
    )
    await commit(session)
    return moved is not None


async def active_nfts(session: AsyncSession, limit: int = 500) -> list[uuid.UUID]:
    """NFTs in a non-terminal state, oldest change first (the saga sweep)."""
    ids = await session.scalars(
        select(Nft.id)
        .where(Nft.status.in_(ACTIVE_STATUSES))
        .order_by(Nft.updated_at)
        .limit(limit)
    )
    result = list(ids)
    await session.rollback()
    return result
