"""Closes auctions within moments of ``ends_at``: settle or ``no_sale``, exactly once.

Every cycle closes every due auction (one transaction each, claimed with ``FOR
UPDATE SKIP LOCKED`` in ``auctions.closing.close_next_due``, each its own unit
of work), then sleeps until
the next announced end time from Redis or the poll interval, whichever is
sooner. The poll alone bounds the delay (an auction whose end was never
announced, or announced to a Redis that restarted empty, still closes within one
interval), so Redis only makes closing more punctual.
"""

import time
import uuid

import structlog

from api.auctions.closing import SettlementFailed, close_next_due
from api.auctions.ends import drop_stale_hints, next_end_hint
from api.core.cache import get_card_cache
from api.core.db import get_sessionmaker
from api.core.uow import UnitOfWork
from api.workers.loop import Worker
from ece.settings import get_settings

log = structlog.get_logger("api.workers.auction_closer")

MIN_SLEEP_S = 0.01
FAILED_RETRY_S = 30.0


class AuctionCloser(Worker):
    name = "auctions"

    def __init__(self, interval_s: float) -> None:
        super().__init__(interval_s)
        self.failing: dict[uuid.UUID, float] = {}  # auction id -> monotonic time to retry

    async def cycle(self) -> None:
        cache = get_card_cache()
        fee_bps = get_settings().fee_bps
        now = time.monotonic()
        self.failing = {a: t for a, t in self.failing.items() if t > now}
        async with get_sessionmaker()() as session:
            while True:
                try:
                    settled = await close_next_due(
                        UnitOfWork(session), cache, fee_bps, self.failing
                    )
                except SettlementFailed as exc:
                    log.exception("auction_settlement_failed", auction_id=str(exc.auction_id),
                                  retry_in_s=FAILED_RETRY_S)
                    self.failing[exc.auction_id] = time.monotonic() + FAILED_RETRY_S
                    continue
                if settled is None:
                    return
                lag_ms = round((time.time() - settled.ends_at.timestamp()) * 1000, 1)
                log.info(
                    "auction_closed",
                    auction_id=str(settled.auction_id),
                    result=settled.result,
                    winner_id=str(settled.winner_id) if settled.winner_id else None,
                    price_cents=settled.price_cents,
                    fee_cents=settled.fee_cents,
                    lag_ms=lag_ms,
                )

    async def next_delay(self) -> float:
        redis = get_card_cache().redis
        hint = await next_end_hint(redis)
        now = time.time()
        if hint is not None and hint <= now:
            # Due but not closable by us: already closed elsewhere, cancelled, or held by a
            # bid right now. Drop what is no longer active; keep polling at the normal pace.
            async with get_sessionmaker()() as session:
                await drop_stale_hints(redis, session, now)
            return self.interval_s
        if hint is None:
            return self.interval_s
        return max(MIN_SLEEP_S, min(self.interval_s, hint - now))
