"""NFT per card (at most one) and the chain transactions that created and moved it.

``nft_transactions.card_history_id`` is unique so each ownership change is sent to
the chain at most once, whatever the number of worker retries.
"""

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, created_at, sql_in, updated_at, uuid_pk

NFT_STATUSES = ("pending", "uploading", "minting", "minted", "failed")
NFT_TX_KINDS = ("mint", "transfer")
NFT_TX_STATUSES = ("pending", "submitted", "confirmed", "failed")


class Nft(Base):
    __tablename__ = "nfts"
    __table_args__ = (
        CheckConstraint(sql_in("status", NFT_STATUSES), name="status"),
        CheckConstraint(
            "status <> 'minted' OR (mint_address IS NOT NULL AND owner_address IS NOT NULL)",
            name="minted_has_mint",
        ),
    )
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = uuid_pk()
    card_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cards.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16), server_default="pending", default="pending")
    mint_address: Mapped[str | None] = mapped_column(String(64), unique=True)
    metadata_uri: Mapped[str | None] = mapped_column(Text)
    tx_signature: Mapped[str | None] = mapped_column(String(128))
    owner_address: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class NftTransaction(Base):
    __tablename__ = "nft_transactions"
    __table_args__ = (
        CheckConstraint(sql_in("kind", NFT_TX_KINDS), name="kind"),
        CheckConstraint(sql_in("status", NFT_TX_STATUSES), name="status"),
        Index("ix_nft_transactions_nft_id_created_at", "nft_id", "created_at"),
        Index("ix_nft_transactions_status", "status"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    nft_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("nfts.id"))
    kind: Mapped[str] = mapped_column(String(16))
    from_address: Mapped[str | None] = mapped_column(String(64))
    to_address: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str | None] = mapped_column(String(128), unique=True)
    card_history_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("card_history.id"), unique=True
    )
    status: Mapped[str] = mapped_column(String(16), server_default="pending", default="pending")
    created_at: Mapped[datetime] = created_at()
