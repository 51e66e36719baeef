"""Deletes Idempotency-Key rows past their 24 h lifetime.

An expired key is already ignored (the next request may reuse it), so this only
keeps the table from growing without bound; running it every few minutes is enough.
The ``idempotency`` selection also runs its sibling, ``challenge_purger`` (expired
wallet challenges).
"""

import structlog

from api.core.db import get_sessionmaker
from api.core.uow import UnitOfWork
from api.web.idempotency import purge_expired
from api.workers.loop import Worker

log = structlog.get_logger("api.workers.idempotency_purger")

BATCH = 1000


class IdempotencyPurger(Worker):
    name = "idempotency"

    async def cycle(self) -> None:
        async with get_sessionmaker()() as session:
            while True:
                async with UnitOfWork(session) as uow:
                    purged = await purge_expired(uow.session, BATCH)
                if purged:
                    log.info("idempotency_keys_purged", count=purged)
                if purged < BATCH:
                    return
