"""Marks past-due pending trade offers ``expired`` (with an audit event each).

Reads already report such offers as expired and accepting them is refused, so
this worker only makes the stored status (and the CDC stream built on it) catch
up with the clock; a delay of a cycle is harmless.
"""

import structlog

from api.core.db import get_sessionmaker
from api.core.uow import UnitOfWork
from api.trades.service import expire_due_offers
from api.workers.loop import Worker

log = structlog.get_logger("api.workers.trade_expirer")

BATCH = 500


class TradeExpirer(Worker):
    name = "trades"

    async def cycle(self) -> None:
        async with get_sessionmaker()() as session:
            while True:
                async with UnitOfWork(session) as uow:
                    expired = await expire_due_offers(uow, BATCH)
                if expired:
                    log.info("trade_offers_expired", count=len(expired),
                             offer_ids=[str(o) for o in expired[:20]])
                if len(expired) < BATCH:
                    return
