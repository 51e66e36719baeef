"""NFT rules: the mint request (API) and the database side of the mint saga and of
chain transfers (workers). Postgres is the truth; the chain and Arweave follow it.

Every function here is one short transaction (or a building block of the API's
one transaction). Workers never hold a transaction open across a network call:
they record what they are about to do, do it, then record that it was done, so a
worker killed at any point resumes from the database alone.

The mint request allows cards that are listed or in an auction: the token always
follows ownership (the chain transfer worker moves it when a sale or an auction
settles), so minting does not interfere with the market and there is no reason to
make the owner cancel a listing first.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, exists, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from api.audit.chain import AuditContext, record
from api.cards.models import Card, CardHistory
from api.cards.ownership import lock_cards
from api.core.problems import Problem, conflict, not_found
from api.nfts.models import Nft, NftTransaction
from api.users.models import User

if TYPE_CHECKING:
    from api.web.idempotency import Idempotency

ACTIVE_STATUSES = ("pending", "uploading", "minting")
OPEN_TX_STATUSES = ("pending", "submitted")
TRANSFER_REASONS = ("sale", "trade", "auction")
MAX_ERROR_LENGTH = 2000


class PermanentMintError(Exception):
    """The saga cannot succeed for this NFT whatever it retries (reason goes to ``error``)."""


# --- API ------------------------------------------------------------------------------


async def request_mint(
    session: AsyncSession,
    ctx: AuditContext,
    user: User,
    card_id: uuid.UUID,
    idem: Idempotency | None = None,
) -> Nft:
    """Create the NFT in ``pending`` (the saga worker takes it from there); one COMMIT.

    The card row is locked first (after the idempotency key, per the global lock
    order) so the ownership check cannot race a sale; the unique ``nfts.card_id``
    settles two concurrent requests, the loser gets 409 ``already_minted``. A
    ``failed`` NFT may be requested again: the same row goes back to ``pending``
    and the saga resumes with what it already did (the upload, the mint address).
    """
    cards = await lock_cards(session, [card_id])
    if not cards:
        raise not_found("card")
    if cards[0].owner_id != user.id:
        raise Problem(403, "card_not_owned", "only the card's owner can mint it")
    nft = await session.scalar(select(Nft).where(Nft.card_id == card_id).with_for_update())
    retry = nft is not None
    if nft is not None:
        if nft.status != "failed":
            raise conflict(f"this card's NFT is already {nft.status}", "already_minted")
        nft.status, nft.error = "pending", None
        await session.flush()
    else:
        nft = Nft(id=uuid.uuid4(), card_id=card_id, status="pending")
        session.add(nft)
        try:
            await session.flush()
        except IntegrityError as exc:
            await session.rollback()
            raise conflict("this card already has an NFT", "already_minted") from exc
    await record(
        session, ctx, "nft.mint_requested", "nft", nft.id, {"card_id": str(card_id), "retry": retry}
    )
    if idem is not None:
        await idem.save(session, nft)
    await session.commit()
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
            raise not_found("card")
        raise not_found("nft")
    return nft


# --- mint saga (worker) -----------------------------------------------------------------


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
    await session.commit()
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
    await session.commit()
    return intent


async def record_signature(session: AsyncSession, tx_id: uuid.UUID, signature: str) -> None:
    """The signature of a transaction about to be sent (so a crash cannot lose it)."""
    await session.execute(
        update(NftTransaction)
        .where(NftTransaction.id == tx_id)
        .values(signature=signature, status="submitted")
    )
    await session.commit()


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
    await session.commit()
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
    await session.commit()
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


# --- chain transfers (worker) -----------------------------------------------------------


@dataclass(frozen=True)
class TransferStep:
    """One ownership change to replay on chain (its ``nft_transactions`` row exists)."""

    tx_id: uuid.UUID
    nft_id: uuid.UUID
    card_id: uuid.UUID
    history_id: uuid.UUID
    mint_address: str
    from_user_id: uuid.UUID
    from_address: str
    to_address: str
    status: str
    signature: str | None


def _after_anchor(anchor: tuple[Any, Any] | None) -> Any:
    """History rows that happened after the owner the token was minted to."""
    if anchor is None:
        return True
    return tuple_(CardHistory.at, CardHistory.id) > tuple_(*anchor)


async def _anchor(session: AsyncSession, nft_id: uuid.UUID) -> tuple[Any, Any] | None:
    """(at, id) of the history row the mint went to; later rows are transfers to replay."""
    row = (
        await session.execute(
            select(CardHistory.at, CardHistory.id)
            .join(NftTransaction, NftTransaction.card_history_id == CardHistory.id)
            .where(NftTransaction.nft_id == nft_id, NftTransaction.kind == "mint")
        )
    ).first()
    return (row.at, row.id) if row is not None else None


async def next_transfer(session: AsyncSession, card_id: uuid.UUID) -> TransferStep | None:
    """The next ownership change of ``card_id`` to put on chain, or None when in sync.

    An unfinished transfer (pending/submitted) is resumed first. Otherwise the
    oldest history row after the mint without a transfer is claimed by inserting
    its ``nft_transactions`` row (unique ``card_history_id``: exactly one per
    change). Rows are taken in ``at`` order, preferring the one whose sender is
    the current holder, so A->B->C is replayed as A->B then B->C even when the two
    history rows carry equal or out-of-commit-order timestamps. A failed transfer
    blocks the card (the token is not where later rows expect it); it is reported
    on the DLQ and by reconciliation, never skipped.
    """
    nft = await session.scalar(select(Nft).where(Nft.card_id == card_id, Nft.status == "minted"))
    if nft is None or nft.mint_address is None:
        await session.rollback()
        return None
    sender, recipient = aliased(User), aliased(User)
    base = (
        select(CardHistory, sender.custody_address, recipient.custody_address)
        .join(sender, sender.id == CardHistory.from_user_id)
        .join(recipient, recipient.id == CardHistory.to_user_id)
    )
    open_tx = await session.scalar(
        select(NftTransaction)
        .where(
            NftTransaction.nft_id == nft.id,
            NftTransaction.kind == "transfer",
            NftTransaction.status.in_((*OPEN_TX_STATUSES, "failed")),
        )
        .order_by(NftTransaction.created_at)
        .limit(1)
    )
    if open_tx is not None:
        if open_tx.status == "failed" or open_tx.card_history_id is None:
            await session.rollback()
            return None
        row = (await session.execute(base.where(CardHistory.id == open_tx.card_history_id))).one()
        step = _step(nft, open_tx, row[0])
        await session.rollback()
        return step
    anchor = await _anchor(session, nft.id)
    candidates = (
        await session.execute(
            base.where(
                CardHistory.card_id == card_id,
                CardHistory.reason.in_(TRANSFER_REASONS),
                _after_anchor(anchor),
                ~exists().where(NftTransaction.card_history_id == CardHistory.id),
            )
            .order_by(CardHistory.at, CardHistory.id)
            .limit(50)
        )
    ).all()
    if not candidates:
        await session.rollback()
        return None
    chosen = next((c for c in candidates if c[1] == nft.owner_address), candidates[0])
    history, from_address, to_address = chosen
    if from_address is None or to_address is None:
        await session.rollback()
        raise PermanentMintError(f"history {history.id}: a party has no custody address")
    inserted = await session.scalar(
        pg_insert(NftTransaction)
        .values(
            id=uuid.uuid4(),
            nft_id=nft.id,
            kind="transfer",
            from_address=from_address,
            to_address=to_address,
            card_history_id=history.id,
            status="pending",
        )
        .on_conflict_do_nothing(index_elements=["card_history_id"])
        .returning(NftTransaction)
    )
    await session.commit()
    if inserted is None:  # another worker claimed it a moment ago: read theirs next time
        return await next_transfer(session, card_id)
    return _step(nft, inserted, history)


def _step(nft: Nft, tx: NftTransaction, history: CardHistory) -> TransferStep:
    assert nft.mint_address is not None and history.from_user_id is not None
    assert tx.from_address is not None
    return TransferStep(
        tx_id=tx.id,
        nft_id=nft.id,
        card_id=nft.card_id,
        history_id=history.id,
        mint_address=nft.mint_address,
        from_user_id=history.from_user_id,
        from_address=tx.from_address,
        to_address=tx.to_address,
        status=tx.status,
        signature=tx.signature,
    )


async def record_transfer(
    session: AsyncSession, step: TransferStep, signature: str | None
) -> None:
    """The token is at the new owner's address: confirm the row and move ``owner_address``."""
    values: dict[str, Any] = {"status": "confirmed"}
    if signature is not None:
        values["signature"] = signature
    await session.execute(
        update(NftTransaction).where(NftTransaction.id == step.tx_id).values(**values)
    )
    await session.execute(
        update(Nft).where(Nft.id == step.nft_id).values(owner_address=step.to_address)
    )
    await session.commit()


async def record_transfer_failed(session: AsyncSession, step: TransferStep) -> None:
    await session.execute(
        update(NftTransaction).where(NftTransaction.id == step.tx_id).values(status="failed")
    )
    await session.commit()


async def cards_out_of_sync(session: AsyncSession, limit: int = 500) -> list[uuid.UUID]:
    """Minted cards with an ownership change not yet confirmed on chain (the sweep)."""
    mint_tx = aliased(NftTransaction)
    anchor = aliased(CardHistory)
    unreplayed = (
        select(Nft.card_id)
        .join(mint_tx, and_(mint_tx.nft_id == Nft.id, mint_tx.kind == "mint"))
        .outerjoin(anchor, anchor.id == mint_tx.card_history_id)
        .join(CardHistory, CardHistory.card_id == Nft.card_id)
        .where(
            Nft.status == "minted",
            CardHistory.reason.in_(TRANSFER_REASONS),
            func.coalesce(
                tuple_(CardHistory.at, CardHistory.id) > tuple_(anchor.at, anchor.id), True
            ),
            ~exists().where(NftTransaction.card_history_id == CardHistory.id),
        )
    )
    unfinished = (
        select(Nft.card_id)
        .join(NftTransaction, NftTransaction.nft_id == Nft.id)
        .where(NftTransaction.kind == "transfer", NftTransaction.status.in_(OPEN_TX_STATUSES))
    )
    ids = await session.scalars(unreplayed.union(unfinished).limit(limit))
    result = list(ids)
    await session.rollback()
    return result


async def card_of_nft(session: AsyncSession, nft_id: uuid.UUID) -> uuid.UUID | None:
    card_id = await session.scalar(select(Nft.card_id).where(Nft.id == nft_id))
    await session.rollback()
    return card_id
