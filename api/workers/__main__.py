"""``python -m api.workers [--only auctions,trades,mints,transfers]``: the background workers.

``auctions`` and ``trades`` poll Postgres; ``mints`` (the NFT mint saga) and
``transfers`` (tokens follow card ownership) are woken by the change stream and
sweep Postgres too; ``notifications`` stores the stream's notifications, rings the
doorbell and sends Web Push. The local stack runs them as three parts,
``workers``, ``chain-workers`` and ``delivery``, so the marketplace never waits
for the chain or the broker to be up.

One process runs the selected workers concurrently on one event loop. SIGTERM or
SIGINT lets the current transactions finish and exits 0; SIGKILL at any moment is
safe too (uncommitted work rolls back and is redone by the next cycle of any
worker process). Run several processes for more throughput or availability.
"""

import argparse
import asyncio
import contextlib
import os
import signal
import sys

import structlog
from redis.exceptions import RedisError

from api.core.cache import close_redis, get_redis
from api.core.db import dispose_engine
from api.core.logs import configure_logging
from api.workers import chain_transfers, mint_saga
from api.workers.auction_closer import AuctionCloser
from api.workers.audit_sealer import AuditAnchorer, AuditSealer
from api.workers.change_feed_worker import ChangeFeedWorker
from api.workers.heartbeat import (
    HEARTBEAT_TTL_S,
    READY_MARKER,
    heartbeat_key,
    heartbeat_value,
)
from api.workers.loop import Worker
from api.workers.notification_delivery import NotificationDelivery
from api.workers.purgers import ChallengePurger, IdempotencyPurger
from api.workers.trade_expirer import TradeExpirer

log = structlog.get_logger("api.workers")

PURGE_INTERVAL_S = 300.0  # expired Idempotency-Key rows: housekeeping, not urgent

WORKERS = ("auctions", "trades", "idempotency", "mints", "transfers", "audit", "anchors",
           "notifications")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m api.workers",
        description="Run ECE background workers: the auction closer (settles auctions at "
        "their end time), the trade offer expirer, the Idempotency-Key purger, the NFT mint "
        "saga, the chain transfers that move tokens after sales and the notification delivery "
        "(stores ece.notifications, doorbell, Web Push). Settings come from ECE_* variables.",
    )
    parser.add_argument(
        "--only",
        default=",".join(WORKERS),
        help=f"comma-separated workers to run (default: all of {','.join(WORKERS)})",
    )
    parser.add_argument(
        "--poll-interval", type=float, default=0.5,
        help="seconds between auction closer polls of Postgres (default 0.5; Redis end "
        "times wake it earlier)",
    )
    parser.add_argument(
        "--trade-interval", type=float, default=1.0,
        help="seconds between trade offer expiry sweeps (default 1.0)",
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(WORKERS))
    if unknown or not names:
        parser.error(f"--only: choose from {', '.join(WORKERS)} (got {args.only!r})")
    if args.poll_interval <= 0 or args.trade_interval <= 0:
        parser.error("intervals must be positive")
    args.names = names
    return args


def build(args: argparse.Namespace) -> list[Worker]:
    workers: list[Worker] = []
    if "auctions" in args.names:
        workers.append(AuctionCloser(args.poll_interval))
    if "trades" in args.names:
        workers.append(TradeExpirer(args.trade_interval))
    if "idempotency" in args.names:
        workers.append(IdempotencyPurger(PURGE_INTERVAL_S))
        workers.append(ChallengePurger(PURGE_INTERVAL_S))  # expired wallet challenges
    if "mints" in args.names:
        workers.append(ChangeFeedWorker("mints", mint_saga.run))
    if "transfers" in args.names:
        workers.append(ChangeFeedWorker("transfers", chain_transfers.run))
    if "audit" in args.names:
        workers.append(AuditSealer())
    if "anchors" in args.names:
        workers.append(AuditAnchorer())
    if "notifications" in args.names:
        workers.append(NotificationDelivery())
    return workers


async def heartbeat(workers: list[Worker], stop: asyncio.Event) -> None:
    """Refresh this process's key once every worker has completed a cycle."""
    pid = os.getpid()
    announced = False
    while not stop.is_set():
        if all(w.last_ok is not None for w in workers):
            state = {w.name: w.last_ok or 0.0 for w in workers}
            try:
                await get_redis().set(heartbeat_key(pid), heartbeat_value(pid, state),
                                      ex=HEARTBEAT_TTL_S)
            except RedisError as exc:
                log.warning("heartbeat_failed", error=str(exc))
            if not announced:
                log.info(READY_MARKER, pid=pid, workers=[w.name for w in workers])
                announced = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
    with contextlib.suppress(RedisError):
        await get_redis().delete(heartbeat_key(pid))


async def main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    workers = build(args)
    structlog.contextvars.bind_contextvars(pid=os.getpid())  # tells processes apart in one log
    log.info("workers_starting", pid=os.getpid(), workers=[w.name for w in workers])
    try:
        await asyncio.gather(heartbeat(workers, stop), *(w.run(stop) for w in workers))
    finally:
        await close_redis()
        await dispose_engine()
    log.info("workers_stopped", pid=os.getpid())


if __name__ == "__main__":
    configure_logging()
    asyncio.run(main(parse_args(sys.argv[1:])))
