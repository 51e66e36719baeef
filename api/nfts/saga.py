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

from sqlalchemy import select, text, update
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


# --- batches: one statement per step for many NFTs (the batched saga) ----------------


async def saga_views(session: AsyncSession, nft_ids: list[uuid.UUID]) -> list[SagaView]:
    """:func:`saga_view` for many NFTs in one read."""
    rows = (await session.execute(
        select(Nft, Card).join(Card, Card.id == Nft.card_id).where(Nft.id.in_(nft_ids))
    )).all()
    fields = ("id", "name", "set_name", "number", "rarity", "edition", "attributes",
              "image_object_key")
    views = [SagaView(nft.id, nft.card_id, nft.status, nft.metadata_uri,
                      {f: getattr(card, f) for f in fields}) for nft, card in rows]
    await session.rollback()
    return views


async def record_metadata_uris(
    session: AsyncSession, uris: dict[uuid.UUID, str]
) -> set[uuid.UUID]:
    """:func:`record_metadata_uri` for many NFTs in one UPDATE; the ids that moved."""
    if not uris:
        return set()
    moved = await session.execute(text(
        "UPDATE nfts SET status = 'uploading', metadata_uri = v.uri "
        "FROM unnest(CAST(:ids AS uuid[]), CAST(:uris AS text[])) AS v(id, uri) "
        "WHERE nfts.id = v.id AND nfts.status IN ('pending', 'uploading') RETURNING nfts.id"
    ), {"ids": list(uris), "uris": list(uris.values())})
    result = {row[0] for row in moved}
    await commit(session)
    return result


@dataclass(frozen=True)
class BatchMint:
    """One NFT of a batch, ready to mint: :class:`MintIntent` plus what the mint needs."""

    nft_id: uuid.UUID
    name: str
    intent: MintIntent


async def prepare_mints(
    session: AsyncSession, nft_ids: list[uuid.UUID]
) -> tuple[list[BatchMint], dict[uuid.UUID, str]]:
    """:func:`prepare_mint` for many NFTs in one transaction: ``uploading -> minting``,
    the missing ``mint`` rows created with the owner *now* and the history anchor,
    failed rows re-opened. Returns the mints and, per NFT, a permanent error (the
    caller records those as ``failed`` right after, as the single-NFT path does)."""
    errors: dict[uuid.UUID, str] = {}
    moved = {row[0]: row[1] for row in await session.execute(text(
        "WITH moved AS (UPDATE nfts SET status = 'minting' WHERE id = ANY(CAST(:ids AS uuid[])) "
        "AND status = 'uploading' RETURNING id, metadata_uri) "
        "SELECT id, metadata_uri FROM moved UNION ALL SELECT id, metadata_uri FROM nfts "
        "WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'minting'"
    ), {"ids": nft_ids})}  # rows already minting are not rewritten (no change event)
    for nft_id, uri in moved.items():
        if uri is None:
            errors[nft_id] = "no metadata was uploaded before minting"
    ready = [nft_id for nft_id in moved if nft_id not in errors]
    owners = (await session.execute(text(
        "SELECT n.id, c.owner_id, u.custody_address, (SELECT h.id FROM card_history h "
        "  WHERE h.card_id = c.id AND h.to_user_id = c.owner_id "
        "  ORDER BY h.at DESC, h.id DESC LIMIT 1) "
        "FROM nfts n JOIN cards c ON c.id = n.card_id JOIN users u ON u.id = c.owner_id "
        "WHERE n.id = ANY(CAST(:ids AS uuid[])) AND NOT EXISTS (SELECT 1 FROM nft_transactions t "
        "  WHERE t.nft_id = n.id AND t.kind = 'mint')"
    ), {"ids": ready})).all()
    new = [row for row in owners if row[2] is not None]
    for row in owners:
        if row[2] is None:
            errors[row[0]] = f"the card's owner {row[1]} has no custody address"
    if new:
        await session.execute(text(
            "INSERT INTO nft_transactions (id, nft_id, kind, to_address, card_history_id, status) "
            "SELECT v.id, v.nft_id, 'mint', v.addr, v.anchor, 'pending' FROM unnest("
            "CAST(:ids AS uuid[]), CAST(:nfts AS uuid[]), CAST(:addrs AS text[]), "
            "CAST(:anchors AS uuid[])) AS v(id, nft_id, addr, anchor)"
        ), {"ids": [uuid.uuid4() for _ in new], "nfts": [r[0] for r in new],
            "addrs": [r[2] for r in new], "anchors": [r[3] for r in new]})
    going = [i for i in ready if i not in errors]
    await session.execute(text(
        "UPDATE nft_transactions SET status = 'pending' WHERE kind = 'mint' AND status = 'failed' "
        "AND nft_id = ANY(CAST(:ids AS uuid[]))"
    ), {"ids": going})  # a failed NFT requested again: same intent, new attempt
    rows = (await session.execute(text(
        "SELECT t.id, n.id, t.to_address, t.signature, n.metadata_uri, c.name "
        "FROM nft_transactions t JOIN nfts n ON n.id = t.nft_id JOIN cards c ON c.id = n.card_id "
        "WHERE t.kind = 'mint' AND t.status IN ('pending', 'submitted') "
        "AND n.id = ANY(CAST(:ids AS uuid[]))"
    ), {"ids": going})).all()
    await commit(session)
    mints = [BatchMint(r[1], r[5], MintIntent(r[0], r[2], r[3], r[4])) for r in rows]
    return mints, errors


async def record_signatures(session: AsyncSession, signatures: dict[uuid.UUID, str]) -> None:
    """:func:`record_signature` for many transactions (tx id -> signature) in one UPDATE."""
    if signatures:
        await session.execute(text(
            "UPDATE nft_transactions SET signature = v.sig, status = 'submitted' "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:sigs AS text[])) AS v(id, sig) "
            "WHERE nft_transactions.id = v.id"
        ), {"ids": list(signatures), "sigs": list(signatures.values())})
        await commit(session)


async def record_minted_many(
    session: AsyncSession, minted: list[tuple[uuid.UUID, uuid.UUID, str, str | None, str]]
) -> int:
    """:func:`record_minted` for many (nft id, tx id, mint, signature, holder) at once."""
    if not minted:
        return 0
    columns = list(zip(*minted, strict=True))
    params = {"nfts": list(columns[0]), "txs": list(columns[1]), "mints": list(columns[2]),
              "sigs": list(columns[3]), "owners": list(columns[4])}
    moved = await session.execute(text(
        "UPDATE nfts SET status = 'minted', mint_address = v.mint, tx_signature = v.sig, "
        "owner_address = v.owner, error = NULL FROM unnest(CAST(:nfts AS uuid[]), "
        "CAST(:mints AS text[]), CAST(:sigs AS text[]), CAST(:owners AS text[])) "
        "AS v(id, mint, sig, owner) WHERE nfts.id = v.id AND nfts.status = 'minting' "
        "RETURNING nfts.id"
    ), params)
    count = len(moved.all())
    await session.execute(text(
        "UPDATE nft_transactions SET status = 'confirmed', "
        "signature = coalesce(v.sig, nft_transactions.signature) "
        "FROM unnest(CAST(:txs AS uuid[]), CAST(:sigs AS text[])) AS v(id, sig) "
        "WHERE nft_transactions.id = v.id"
    ), {"txs": params["txs"], "sigs": params["sigs"]})
    await commit(session)
    return count
