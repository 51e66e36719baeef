"""Ledger building blocks: every money movement is one balanced ledger transaction.

Balances move only by inserting entries (a database trigger applies each entry to
its account's ``balance_cents``, a CHECK refuses negative user balances and a
deferred trigger refuses an unbalanced transaction at COMMIT; see ``models.py``).
These functions never commit: the calling service owns the transaction, so a
purchase's payment, card transfer and audit event commit together or not at all.

Locking. Each function locks the account rows it touches with one ``SELECT ... FOR
UPDATE`` before inserting entries, so the balance it checks is the balance it moves.
The order is fixed: user accounts by id, then the platform accounts
(``platform_fees``, ``external_deposits``) by id, so two transactions cannot
deadlock on accounts. Platform accounts come last because every sale and deposit
touches them: they are the hottest rows of the system, and a caller that moves money
as its last write before the audit event holds them only for the commit. A
transaction that moves money for several users through *several* calls (a bid that
releases the previous leader's hold and holds the new bidder's amount) must first
call :func:`lock_accounts` with every user involved: otherwise its second call could
lock an account with a smaller id than one it already holds. The global lock order
of the whole API is documented in ``api/cards/ownership.py`` (accounts come after
the business row and cards).
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from api.audit.chain import AuditContext, record
from api.core.pagination import decode_cursor, encode_cursor
from api.core.problems import Problem, validation_error
from api.core.uow import UnitOfWork
from api.ledger.errors import DEPOSIT_REFERENCE_INDEX, reference_used
from api.ledger.models import (
    TRANSACTION_KINDS,
    USER_ACCOUNT_KINDS,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
)
from api.users.models import User

AVAILABLE = "user_available"
HELD = "user_held"
PLATFORM_FEES = "platform_fees"
EXTERNAL_DEPOSITS = "external_deposits"


async def open_user_accounts(session: AsyncSession, user_id: uuid.UUID) -> list[LedgerAccount]:
    """The user's ``user_available`` and ``user_held`` accounts, both at zero."""
    accounts = [LedgerAccount(user_id=user_id, kind=kind) for kind in USER_ACCOUNT_KINDS]
    session.add_all(accounts)
    await session.flush()
    return accounts


def fee_for(price_cents: int, bps: int) -> int:
    """Platform fee in cents: ``floor(price × bps / 10000)`` in integer arithmetic."""
    return price_cents * bps // 10_000


def insufficient_funds(detail: str = "not enough available balance") -> Problem:
    return Problem(409, "insufficient_funds", detail)


@dataclass(frozen=True)
class LockedAccount:
    """A user account row as read under its row lock (the balance is current)."""

    id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    balance_cents: int


class Accounts:
    """Locked user accounts by ``(user_id, kind)`` and platform account ids by kind."""

    def __init__(self, rows: Iterable[LockedAccount], platform: dict[str, uuid.UUID]) -> None:
        self.by_key = {(r.user_id, r.kind): r for r in rows}
        self.platform = platform

    def get(self, user_id: uuid.UUID, kind: str) -> LockedAccount:
        try:
            return self.by_key[(user_id, kind)]
        except KeyError:
            raise LookupError(f"no {kind} ledger account for user {user_id}") from None

    def platform_id(self, kind: str) -> uuid.UUID:
        try:
            return self.platform[kind]
        except KeyError:
            raise LookupError(f"platform account {kind} not resolved") from None


async def lock_accounts(
    session: AsyncSession, user_ids: Iterable[uuid.UUID], platform_kinds: Iterable[str] = ()
) -> Accounts:
    """Lock both accounts of every user in id order; resolve the named platform accounts.

    One statement: PostgreSQL locks rows as they leave the sort, so the order is the
    id order whatever the plan. Re-locking rows this transaction already holds is
    free, so calling this more than once per transaction is fine.

    Platform accounts are looked up (scalar sub-selects, which ``FOR UPDATE OF``
    does not lock) but not locked here: the entry that moves them locks them, as the
    last ledger lock of the transaction. Nothing reads their balance, and every
    sale and deposit shares them, so they are held from the entry to the COMMIT only.
    """
    users = sorted(set(user_ids))
    kinds = sorted(set(platform_kinds))
    platform = aliased(LedgerAccount)
    lookups = [
        select(platform.id)
        .where(platform.user_id.is_(None), platform.kind == kind)
        .scalar_subquery()
        .label(kind)
        for kind in kinds
    ]
    if not users:
        ids = (await session.execute(select(*lookups))).one() if lookups else ()
        return Accounts((), dict(zip(kinds, ids, strict=True)))
    stmt = (
        select(
            LedgerAccount.id,
            LedgerAccount.user_id,
            LedgerAccount.kind,
            LedgerAccount.balance_cents,
            *lookups,
        )
        .where(LedgerAccount.user_id.in_(users))
        .order_by(LedgerAccount.id)
        .with_for_update(of=LedgerAccount)
    )
    rows = (await session.execute(stmt)).all()
    locked = [LockedAccount(r[0], r[1], r[2], r[3]) for r in rows if r[1] is not None]
    missing = set(users) - {r.user_id for r in locked}
    if missing:
        raise LookupError(f"no ledger accounts for users {sorted(map(str, missing))}")
    resolved = dict(zip(kinds, rows[0][4:], strict=True))
    if any(v is None for v in resolved.values()):
        raise LookupError(f"platform accounts missing: {resolved}")
    return Accounts(locked, resolved)


async def _post(
    session: AsyncSession,
    kind: str,
    reference_id: uuid.UUID | None,
    legs: list[tuple[uuid.UUID, int]],
) -> list[LedgerEntry]:
    """Insert one ledger transaction and its entries (zero legs are skipped).

    The legs must sum to zero; the database checks it again at COMMIT.
    """
    if kind not in TRANSACTION_KINDS:
        raise ValueError(f"unknown ledger transaction kind {kind!r}")
    legs = [(account, amount) for account, amount in legs if amount != 0]
    if sum(amount for _, amount in legs) != 0:
        raise ValueError(f"unbalanced ledger transaction: {legs}")
    tx_id = uuid.uuid4()
    transaction = insert(LedgerTransaction).values(id=tx_id, kind=kind, reference_id=reference_id)
    if not legs:
        await session.execute(transaction)
        return []
    # One round trip: the transaction row in a data-modifying CTE, the entries in the
    # statement itself (their foreign key is checked at the end of the statement). The
    # entries are inserted in leg order, so the apply trigger locks the accounts in
    # that order (the platform leg last).
    ids = [uuid.uuid4() for _ in legs]
    result = await session.scalars(
        insert(LedgerEntry)
        .values([
            {"id": entry_id, "transaction_id": tx_id, "account_id": account, "amount_cents": a}
            for entry_id, (account, a) in zip(ids, legs, strict=True)
        ])
        .add_cte(transaction.cte("ledger_transaction"))
        .returning(LedgerEntry)
    )
    position = {entry_id: i for i, entry_id in enumerate(ids)}
    return sorted(result.all(), key=lambda entry: position[entry.id])


def _require_positive(name: str, value: int) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


async def deposit(
    session: AsyncSession,
    ctx: AuditContext,
    user_id: uuid.UUID,
    amount_cents: int,
    reference: str,
) -> LedgerEntry:
    """Credit ``amount_cents`` from outside the platform (``external_deposits``).

    Returns the user's credit entry. ``reference`` (the bank/payment reference)
    becomes the transaction's ``reference_id`` as a name-based UUID
    (:func:`deposit_reference_id`), so a deposit can be found by its external
    reference, unique among deposits (409 ``conflict`` when already credited: a retry
    never credits twice); the plain string is kept in the ``ledger.deposit`` audit event that
    this function appends. That append takes the audit chain lock until COMMIT, so
    call ``deposit`` as the last write of the transaction (an idempotency
    ``save`` of a key row this transaction already holds may follow).
    """
    _require_positive("amount_cents", amount_cents)
    accounts = await lock_accounts(session, [user_id], [EXTERNAL_DEPOSITS])
    user = accounts.get(user_id, AVAILABLE)
    legs = [(user.id, amount_cents), (accounts.platform_id(EXTERNAL_DEPOSITS), -amount_cents)]
    try:  # the platform leg last: it locks the shared external_deposits row
        entries = await _post(session, "deposit", deposit_reference_id(reference), legs)
    except IntegrityError as exc:
        if DEPOSIT_REFERENCE_INDEX in str(exc.orig):
            raise reference_used(reference) from exc
        raise
    await record(
        session,
        ctx,
        "ledger.deposit",
        "ledger_transaction",
        entries[0].transaction_id,
        {"user_id": str(user_id), "amount_cents": amount_cents, "reference": reference},
    )
    return entries[0]


DEPOSIT_NAMESPACE = uuid.UUID("6f1c3a52-6c55-4a43-9d3e-2f7c8b1d0e01")


def deposit_reference_id(reference: str) -> uuid.UUID:
    """The stable UUID stored as ``reference_id`` for an external deposit reference."""
    return uuid.uuid5(DEPOSIT_NAMESPACE, reference)


async def hold(
    session: AsyncSession,
    user_id: uuid.UUID,
    amount_cents: int,
    kind: str,
    reference_id: uuid.UUID,
) -> None:
    """Reserve money: ``user_available`` → ``user_held`` (409 ``insufficient_funds``)."""
    _require_positive("amount_cents", amount_cents)
    accounts = await lock_accounts(session, [user_id])
    available = accounts.get(user_id, AVAILABLE)
    held = accounts.get(user_id, HELD)
    if available.balance_cents < amount_cents:
        raise insufficient_funds(
            f"available balance {available.balance_cents} < {amount_cents} cents"
        )
    await _post(
        session, kind, reference_id, [(available.id, -amount_cents), (held.id, amount_cents)]
    )


async def release(
    session: AsyncSession,
    user_id: uuid.UUID,
    amount_cents: int,
    kind: str,
    reference_id: uuid.UUID,
) -> None:
    """Give reserved money back: ``user_held`` → ``user_available``.

    Releasing more than is held is a programming error; the CHECK refuses it.
    """
    _require_positive("amount_cents", amount_cents)
    accounts = await lock_accounts(session, [user_id])
    available = accounts.get(user_id, AVAILABLE)
    held = accounts.get(user_id, HELD)
    if held.balance_cents < amount_cents:
        raise ValueError(f"cannot release {amount_cents}: only {held.balance_cents} held")
    await _post(
        session, kind, reference_id, [(held.id, -amount_cents), (available.id, amount_cents)]
    )


async def pay(
    session: AsyncSession,
    buyer_id: uuid.UUID,
    seller_id: uuid.UUID,
    price_cents: int,
    fee_cents: int,
    kind: str,
    reference_id: uuid.UUID,
    *,
    from_held: bool = False,
) -> None:
    """One balanced transaction: buyer −price, seller +(price−fee), platform fees +fee.

    ``from_held`` pays out of the buyer's held money (an auction winner's hold);
    otherwise out of the available balance (409 ``insufficient_funds`` when short).
    """
    _require_positive("price_cents", price_cents)
    if not 0 <= fee_cents <= price_cents:
        raise ValueError(f"fee {fee_cents} outside 0..{price_cents}")
    if buyer_id == seller_id:
        raise ValueError("buyer and seller are the same user")
    accounts = await lock_accounts(session, [buyer_id, seller_id], [PLATFORM_FEES])
    source = accounts.get(buyer_id, HELD if from_held else AVAILABLE)
    if source.balance_cents < price_cents:
        if from_held:
            raise ValueError(f"held {source.balance_cents} < price {price_cents}")
        raise insufficient_funds(
            f"available balance {source.balance_cents} < price {price_cents} cents"
        )
    await _post(
        session,
        kind,
        reference_id,
        [
            (source.id, -price_cents),
            (accounts.get(seller_id, AVAILABLE).id, price_cents - fee_cents),
            (accounts.platform_id(PLATFORM_FEES), fee_cents),  # last: locks the hot row
        ],
    )


async def balances(session: AsyncSession, user_id: uuid.UUID) -> tuple[int, int]:
    """``(available_cents, held_cents)`` read from the maintained balance rows (O(1))."""
    rows = (
        await session.execute(
            select(LedgerAccount.kind, LedgerAccount.balance_cents).where(
                LedgerAccount.user_id == user_id
            )
        )
    ).all()
    by_kind = {kind: balance for kind, balance in rows}
    return int(by_kind.get(AVAILABLE, 0)), int(by_kind.get(HELD, 0))


# --- whole operations (the caller's unit of work commits) and reads for the router ----


async def admin_deposit(
    uow: UnitOfWork,
    ctx: AuditContext,
    user_id: uuid.UUID,
    amount_cents: int,
    reference: str,
) -> LedgerEntry:
    """``POST /admin/deposits``: credit a user and audit it (in the caller's unit of
    work, which also stores an ``Idempotency-Key`` answer)."""
    session = uow.session
    if await session.get(User, user_id) is None:
        raise validation_error(
            "user_id: no such user",
            [{"loc": ["body", "user_id"], "msg": "no such user", "type": "value_error"}],
        )
    return await deposit(session, ctx, user_id, amount_cents, reference)


async def ledger_page(
    session: AsyncSession, user_id: uuid.UUID, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Entries on both of the user's accounts, newest first, keyset on (created_at, id)."""
    stmt = (
        select(
            LedgerEntry.id,
            LedgerEntry.amount_cents,
            LedgerTransaction.kind,
            LedgerTransaction.reference_id,
            LedgerEntry.created_at,
            LedgerAccount.kind.label("account_kind"),
            LedgerEntry.transaction_id,
        )
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerAccount.user_id == user_id)
    )
    if cursor:
        at, row_id = decode_cursor(cursor)
        stmt = stmt.where(tuple_(LedgerEntry.created_at, LedgerEntry.id) < tuple_(at, row_id))
    stmt = stmt.order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc()).limit(limit + 1)
    rows = (await session.execute(stmt)).all()
    items = [
        {
            "id": r.id,
            "amount_cents": r.amount_cents,
            "kind": r.kind,
            "reference_id": r.reference_id,
            "created_at": r.created_at,
            "account": "held" if r.account_kind == HELD else "available",
            "transaction_id": r.transaction_id,
        }
        for r in rows[:limit]
    ]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last.created_at, last.id)
    return items, next_cursor
