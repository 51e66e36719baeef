"""Housekeeping: rows past their lifetime, deleted in batches (the ``idempotency``
selection of ``python -m api.workers`` runs both purgers).

Expired rows are already ignored by the code that reads them (an expired
Idempotency-Key may be reused; an expired wallet challenge is refused), so
purging only keeps the tables from growing without bound; every few minutes is
enough. Each batch is its own transaction, so a purge never holds many locks.
"""

from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.db import get_sessionmaker
from api.core.uow import UnitOfWork
from api.wallets.service import purge_expired_challenges
from api.web.idempotency import purge_expired
from api.workers.loop import Worker

log = structlog.get_logger("api.workers.purgers")

BATCH = 1000


class BatchPurger(Worker):
    """Calls ``purge(session, BATCH)`` until a batch comes back short."""

    purge: Callable[[AsyncSession, int], Awaitable[int]]
    event: str

    async def cycle(self) -> None:
        async with get_sessionmaker()() as session:
            while True:
                async with UnitOfWork(session) as uow:
                    purged = await type(self).purge(uow.session, BATCH)
                if purged:
                    log.info(self.event, count=purged)
                if purged < BATCH:
                    return


class IdempotencyPurger(BatchPurger):
    """Idempotency-Key rows past their 24 h lifetime."""

    name = "idempotency"
    purge = staticmethod(purge_expired)
    event = "idempotency_keys_purged"


class ChallengePurger(BatchPurger):
    """Sign-In-With-Solana challenges an hour after they expired."""

    name = "challenges"
    purge = staticmethod(purge_expired_challenges)
    event = "wallet_challenges_purged"
