"""``python -m ops.localchain --port P --data-dir D``: run the local Solana node.

Accounts are loaded from ``<data-dir>/solana/state.json`` at start, saved every
``--save-interval`` seconds when something changed, and saved once more on
SIGTERM/SIGINT before exiting, so ``ece down``/``up`` keeps every mint.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from pathlib import Path

import structlog

from ece.log import configure
from ops.localchain.chain import LocalChain
from ops.localchain.persist import Snapshotter
from ops.localchain.rpc import Methods
from ops.localchain.server import RpcServer

log = structlog.get_logger("ops.localchain")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ops.localchain",
        description="Local Solana JSON-RPC node over LiteSVM (System, SPL Token, Token-2022, "
        "Associated Token Account and Memo programs).",
    )
    parser.add_argument("--port", type=int, default=8899, help="TCP port (default 8899)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="platform data folder; state goes to <data-dir>/solana/")
    parser.add_argument("--save-interval", type=float, default=2.0,
                        help="seconds between saves when the state changed (default 2)")
    parser.add_argument("--slot-seconds", type=float, default=0.4,
                        help="wall-clock seconds per slot/blockhash (default 0.4)")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


async def _saver(snap: Snapshotter, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        if snap.chain.dirty:
            started = time.perf_counter()
            count = snap.save()
            log.debug("state_saved", accounts=count,
                      ms=round((time.perf_counter() - started) * 1000, 1))


async def run(args: argparse.Namespace) -> None:
    chain = LocalChain(slot_seconds=args.slot_seconds)
    snap = Snapshotter(chain, args.data_dir / "solana")
    loaded = snap.load()
    server = RpcServer(Methods(chain))
    listener = await asyncio.start_server(server.serve_connection, args.host, args.port,
                                          reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    saver = asyncio.create_task(_saver(snap, args.save_interval))
    log.info("localchain_listening", host=args.host, port=args.port, accounts_loaded=loaded,
             slot=chain.slot, state=str(snap.path))
    try:
        await stop.wait()
    finally:
        listener.close()
        saver.cancel()
        count = snap.save()
        log.info("localchain_stopped", accounts_saved=count, requests=server.requests,
                 slot=chain.slot)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure(args.log_level)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
