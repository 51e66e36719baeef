"""Linked wallets and one-time sign-in challenges.

A challenge row is consumed (``used_at``) in the same transaction that accepts its
signature, so a signature can never be replayed. Its ``purpose`` (``login`` or
``link``) is fixed when it is issued and written into the signed message: a
signature made to sign in can never link the wallet, and the other way round.
"""

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, sql_in, uuid_pk

CHALLENGE_PURPOSES = ("login", "link")


class Wallet(Base):
    __tablename__ = "wallets"
    __table_args__ = (Index("ix_wallets_user_id", "user_id"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    address: Mapped[str] = mapped_column(String(64), unique=True)
    linked_at: Mapped[datetime] = mapped_column(server_default=func.now())


class WalletChallenge(Base):
    __tablename__ = "wallet_challenges"
    __table_args__ = (
        # Wallet login checks the address's newest challenges.
        Index("ix_wallet_challenges_address_created_at", "address", "created_at"),
        Index("ix_wallet_challenges_expires_at", "expires_at"),  # the purge
        CheckConstraint(sql_in("purpose", CHALLENGE_PURPOSES), name="purpose"),
    )

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(8), server_default="login")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
