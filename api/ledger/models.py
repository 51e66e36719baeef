"""Ledger accounts, transactions and entries (double-entry, integer cents).

Rules enforced by the database, not by convention:

* ``ledger_entries`` is append-only; inserting an entry moves its account's
  ``balance_cents`` (trigger ``ece_ledger_apply_entry``). Code never updates
  balances directly: insert the entries, and the balance follows.
* Every ledger transaction sums to zero, checked at COMMIT by a deferred
  constraint trigger, so an unbalanced movement can never be committed.
* User accounts can never go negative (CHECK), so an overdraft fails the whole
  transaction. Platform accounts (``platform_fees``, ``external_deposits``) have no
  user and exist once each (seeded by the migration); ``external_deposits`` goes
  negative by design (it is the counterpart of money that entered the platform).
"""

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, created_at, sql_in, uuid_pk

USER_ACCOUNT_KINDS = ("user_available", "user_held")
PLATFORM_ACCOUNT_KINDS = ("platform_fees", "external_deposits")
ACCOUNT_KINDS = USER_ACCOUNT_KINDS + PLATFORM_ACCOUNT_KINDS
TRANSACTION_KINDS = (
    "deposit",
    "sale",
    "bid_hold",
    "bid_release",
    "auction_settlement",
    "adjustment",
)


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint(sql_in("kind", ACCOUNT_KINDS), name="kind"),
        CheckConstraint(
            f"(user_id IS NOT NULL) = ({sql_in('kind', USER_ACCOUNT_KINDS)})",
            name="user_accounts_have_user",
        ),
        CheckConstraint(
            f"balance_cents >= 0 OR NOT ({sql_in('kind', USER_ACCOUNT_KINDS)})",
            name="user_balance_non_negative",
        ),
        UniqueConstraint("user_id", "kind"),
        Index(
            "uq_ledger_accounts_platform_kind",
            "kind",
            unique=True,
            postgresql_where=text("user_id IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(32))
    balance_cents: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    created_at: Mapped[datetime] = created_at()


class LedgerTransaction(Base):
    __tablename__ = "ledger_transactions"
    __table_args__ = (
        CheckConstraint(sql_in("kind", TRANSACTION_KINDS), name="kind"),
        Index("ix_ledger_transactions_reference_id", "reference_id"),
        # An auction is settled at most once, whatever the closer processes do.
        Index(
            "uq_ledger_transactions_auction_settlement",
            "reference_id",
            unique=True,
            postgresql_where=text("kind = 'auction_settlement'"),
        ),
        # A deposit reference credits once (migration 0003; its predicate may also
        # leave out deposits credited twice before the index existed).
        Index(
            "uq_ledger_transactions_deposit_reference",
            "reference_id",
            unique=True,
            postgresql_where=text("kind = 'deposit'"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    kind: Mapped[str] = mapped_column(String(32))
    reference_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = created_at()


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount_cents <> 0", name="amount_non_zero"),
        Index("ix_ledger_entries_account_id_created_at", "account_id", "created_at"),
        Index("ix_ledger_entries_transaction_id", "transaction_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    transaction_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_transactions.id"))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = created_at()
