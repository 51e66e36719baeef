"""Ledger building blocks. Balances move only by inserting balanced entries
(the database applies them and refuses overdrafts; see ``ledger/models.py``)."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from api.ledger.models import USER_ACCOUNT_KINDS, LedgerAccount


async def open_user_accounts(session: AsyncSession, user_id: uuid.UUID) -> list[LedgerAccount]:
    """The user's ``user_available`` and ``user_held`` accounts, both at zero."""
    accounts = [LedgerAccount(user_id=user_id, kind=kind) for kind in USER_ACCOUNT_KINDS]
    session.add_all(accounts)
    await session.flush()
    return accounts
