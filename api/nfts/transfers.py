"""The database side of chain transfers (``api.workers.chain_transfers``): which
ownership change of a minted card to replay on chain next, and its outcome.

Like the saga steps, each function is one short transaction committed through
``api.core.uow.commit``; nothing is held across a network call.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    CompoundSelect,
    Select,
    and_,
    bindparam,
    exists,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from api.cards.models import CardHistory
from api.core.uow import commit
from api.nfts.errors import PermanentMintError
from api.nfts.models import Nft, NftTransaction
from api.nfts.saga import OPEN_TX_STATUSES
from api.users.models import User

TRANSFER_REASONS = ("sale", "trade", "auction")


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
    # Whether another change may be waiting behind this one: False only when this was
    # the card's sole unclaimed change. A change committed after that read wakes the
    # card again (its CDC event, else the sweep), so the job need not look once more.
    more: bool = True


# Built once: a transfer job asks these for every card it handles, and building the ORM
# statements (and their cache keys) cost more of the worker's CPU than running them.
_sender, _recipient = aliased(User), aliased(User)
_PARTIES = (
    select(CardHistory, _sender.custody_address, _recipient.custody_address)
    .join(_sender, _sender.id == CardHistory.from_user_id)
    .join(_recipient, _recipient.id == CardHistory.to_user_id)
)
_MINTED_NFT = select(Nft).where(Nft.card_id == bindparam("card_id"), Nft.status == "minted")
_OPEN_TRANSFER = (
    select(NftTransaction)
    .where(
        NftTransaction.nft_id == bindparam("nft_id"),
        NftTransaction.kind == "transfer",
        NftTransaction.status.in_((*OPEN_TX_STATUSES, "failed")),
    )
    .order_by(NftTransaction.created_at)
    .limit(1)
)
_HISTORY_ROW = _PARTIES.where(CardHistory.id == bindparam("history_id"))
_MINT_ANCHOR = (  # (at, id) of the history row the mint went to
    select(CardHistory.at, CardHistory.id)
    .join(NftTransaction, NftTransaction.card_history_id == CardHistory.id)
    .where(NftTransaction.nft_id == bindparam("nft_id"), NftTransaction.kind == "mint")
)


def _candidates(after_anchor: bool) -> Select[CardHistory, str | None, str | None]:
    """Unclaimed ownership changes of a card, oldest first; with ``after_anchor``, only
    those after the owner the token was minted to (bound as ``anchor_at``/``anchor_id``)."""
    query = _PARTIES.where(
        CardHistory.card_id == bindparam("card_id"),
        CardHistory.reason.in_(TRANSFER_REASONS),
        ~exists().where(NftTransaction.card_history_id == CardHistory.id),
    )
    if after_anchor:
        query = query.where(tuple_(CardHistory.at, CardHistory.id)
                            > tuple_(bindparam("anchor_at", type_=CardHistory.at.type),
                                     bindparam("anchor_id", type_=CardHistory.id.type)))
    return query.order_by(CardHistory.at, CardHistory.id).limit(50)


_CANDIDATES = {True: _candidates(True), False: _candidates(False)}


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
    nft = await session.scalar(_MINTED_NFT, {"card_id": card_id})
    if nft is None or nft.mint_address is None:
        await session.rollback()
        return None
    open_tx = await session.scalar(_OPEN_TRANSFER, {"nft_id": nft.id})
    if open_tx is not None:
        if open_tx.status == "failed" or open_tx.card_history_id is None:
            await session.rollback()
            return None
        row = (await session.execute(_HISTORY_ROW, {"history_id": open_tx.card_history_id})).one()
        step = _step(nft, open_tx, row[0])
        await session.rollback()
        return step
    anchor = (await session.execute(_MINT_ANCHOR, {"nft_id": nft.id})).first()
    params: dict[str, Any] = {"card_id": card_id}
    if anchor is not None:
        params.update(anchor_at=anchor.at, anchor_id=anchor.id)
    candidates = (await session.execute(_CANDIDATES[anchor is not None], params)).all()
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
    await commit(session)
    if inserted is None:  # another worker claimed it a moment ago: read theirs next time
        return await next_transfer(session, card_id)
    return _step(nft, inserted, history, more=len(candidates) > 1)


def _step(
    nft: Nft, tx: NftTransaction, history: CardHistory, *, more: bool = True
) -> TransferStep:
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
        more=more,
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
    await commit(session)


async def record_transfer_failed(session: AsyncSession, step: TransferStep) -> None:
    await session.execute(
        update(NftTransaction).where(NftTransaction.id == step.tx_id).values(status="failed")
    )
    await commit(session)


async def cards_out_of_sync(
    session: AsyncSession, limit: int = 500, among: list[uuid.UUID] | None = None
) -> list[uuid.UUID]:
    """Minted cards with an ownership change not yet confirmed on chain: all of them
    (the sweep), or only those ``among`` the given cards (the feed's wake-ups, so a
    sale of an unminted card or a mint nobody bought meanwhile costs no job)."""
    statement = _OUT_OF_SYNC[among is not None]
    params: dict[str, Any] = {"limit": limit}
    if among is not None:
        params["among"] = among
    ids = await session.scalars(statement, params)
    result = list(ids)
    await session.rollback()
    return result


def _out_of_sync(filtered: bool) -> CompoundSelect:
    """The query of :func:`cards_out_of_sync` (built once, below: the sweep and every
    burst of wake-ups ask it, and building the ORM statement cost more CPU than running
    it); ``filtered`` restricts it to the cards bound as ``among``."""
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
    if filtered:
        among: BindParameter[list[uuid.UUID]] = bindparam("among", expanding=True)
        unreplayed = unreplayed.where(Nft.card_id.in_(among))
        unfinished = unfinished.where(Nft.card_id.in_(among))
    return unreplayed.union(unfinished).limit(bindparam("limit"))


_OUT_OF_SYNC = {True: _out_of_sync(True), False: _out_of_sync(False)}


async def card_of_nft(session: AsyncSession, nft_id: uuid.UUID) -> uuid.UUID | None:
    card_id = await session.scalar(select(Nft.card_id).where(Nft.id == nft_id))
    await session.rollback()
    return card_id
