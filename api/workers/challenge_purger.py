"""Deletes Sign-In-With-Solana challenges an hour after they expired.

An expired challenge is already refused, so this only keeps ``wallet_challenges``
from growing without bound (every challenge request adds a row); it runs beside
the Idempotency-Key purger, in the housekeeping selection ``idempotency``.
"""

import structlog

from api.core.db import get_sessionmaker
from api.core.uow import UnitOfWork
from api.wallets.service import purge_expired_challenges
from api.workers.loop import Worker

log = structlog.get_logger("api.workers.challenge_purger")

BATCH = 1000


class ChallengePurger(Worker):
    name = "challenges"

    async def cycle(self) -> None:
        async with get_sessionmaker()() as session:
            while True:
                async with UnitOfWork(session) as uow:
                    purged = await purge_expired_challenges(uow.session, BATCH)
                if purged:
                    log.info("wallet_challenges_purged", count=purged)
                if purged < BATCH:
                    return
