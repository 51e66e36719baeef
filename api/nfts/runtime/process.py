"""The NFT workers as processes: the crash test hook and the ``python -m`` entry point."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable

import structlog

from ece.settings import Settings, get_settings

log = structlog.get_logger("api.nfts.runtime")

CRASH_ENV = "ECE_TEST_CRASH_AT"  # Settings.test_crash_at


def crash_point(step: str, key: object = None) -> None:
    """TEST HOOK: ``ECE_TEST_CRASH_AT=<step>[:<id>]`` makes the worker SIGKILL itself here.

    Steps: ``mid_bundle`` (the batch's data item URIs recorded, the bundle holding
    this NFT's item not yet posted), ``after_upload`` (metadata posted to Arweave,
    saga not yet moved on),
    ``after_mint_send`` (mint confirmed on chain, not yet recorded as minted),
    ``after_transfer_send`` (transfer confirmed, not yet recorded). With ``:<id>``
    only the NFT (or card, for transfers) with that id triggers it. A real
    ``kill -9`` at the worst moment, used by tests/nfts to prove that a restarted
    worker uploads once, mints once and transfers once. Ignored when ``ECE_ENV=prod``.
    """
    settings = get_settings()
    wanted = settings.test_crash_at
    if not wanted or settings.env == "prod":
        return
    name, _, only = wanted.partition(":")
    if name == step and (not only or only == str(key)):
        log.warning("test_crash_point", step=step, key=str(key), pid=os.getpid())
        os.kill(os.getpid(), signal.SIGKILL)


def run_main(run: Callable[[Settings, asyncio.Event], Awaitable[None]]) -> None:
    """Run one worker as its own process until SIGINT/SIGTERM (``python -m ...``)."""
    from api.core.logs import configure_logging

    configure_logging()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run(get_settings(), stop)

    asyncio.run(main())
