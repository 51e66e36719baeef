"""`ece rebuild-cache`: rebuild Redis' market hot set (``ece:md:*``) from the topics.

How (the simplest way that is right with a running stack): the ``market_data``
pipeline names its consumer group and operator state after a *generation*
(``<data_dir>/flink/market_data.generation``). This command

1. bumps the generation,
2. stops the stream job (SIGTERM to its process group, which keeps the other
   pipelines' last checkpoint); under ``ece up`` the supervisor starts it again
   within seconds (``ece status`` counts it as one restart),
3. deletes every ``ece:md:*`` key, so the API answers from Postgres meanwhile
   (READY_KEY is gone with them),
4. waits, printing progress, until the new generation has claimed the hot set and
   declared it ready.

The restarted job has no committed offsets and no restored state for the new
generation, so ``market_data`` reads ``ece.market.activity`` and the CDC topics
from the beginning; its writer wipes again before its first write, so nothing the
old job wrote late survives. Every other pipeline resumes from its checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console

from ece.contracts import market_data as md
from ece.settings import Settings, get_settings

console = Console(stderr=True)
STOP_TIMEOUT_S = 30.0


def _supervised_job_pid(settings: Settings) -> int | None:
    """The stream job's pid as ``ece up`` last recorded it, if that process is alive."""
    from ops.stack.base import pid_alive
    from ops.stack.supervision import read_state

    record = ((read_state(settings) or {}).get("parts") or {}).get("flink") or {}
    pid = record.get("pid")
    return pid if isinstance(pid, int) and pid_alive(pid) else None


def stop_supervised_job(settings: Settings, say: Callable[[str], None]) -> bool:
    """SIGTERM the supervised job's process group and wait until it is gone."""
    pid = _supervised_job_pid(settings)
    if pid is None:
        return False
    say(f"stopping the stream job (pid {pid}); `ece up` starts it again")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    raise RuntimeError(f"the stream job (pid {pid}) did not stop within {STOP_TIMEOUT_S:.0f}s")


def hot_set_state(client: Any) -> tuple[int, str | None, bool]:
    """(number of ``ece:md:*`` keys, claiming owner, ready?)."""
    keys = len(list(client.scan_iter(match=f"{md.PREFIX}*", count=1000)))
    owner = client.get(md.GENERATION_KEY)
    ready = bool(client.exists(md.READY_KEY))
    return keys, owner.decode() if isinstance(owner, bytes) else owner, ready


def run_rebuild(settings: Settings, *, stop: Callable[[], bool], start: Callable[[], None],
                wait: bool, timeout: float, say: Callable[[str], None]) -> int:
    """Bump, stop, wipe, start, wait: returns the new generation.

    ``stop()`` ends the running job (False: none was running), ``start()`` brings one
    back (a no-op when a supervisor does it).
    """
    import redis

    from streaming.jobs.market_data import bump_generation
    from streaming.jobs.market_redis import wipe

    generation = bump_generation(settings)
    say(f"market_data generation {generation}: it will re-read its topics from the beginning")
    running = stop()
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=10)
    try:
        say(f"deleted {wipe(client)} {md.PREFIX}* keys")
        if not running:
            say("no running stream job found: its next start rebuilds the hot set")
            return generation
        start()
        if not wait:
            return generation
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            keys, owner, ready = hot_set_state(client)
            ours = owner is not None and owner.split(":", 1)[0] == str(generation)
            line = f"{keys} keys, {'claimed' if ours else 'not claimed yet'}, " \
                   f"{'ready' if ready else 'catching up'}"
            if line != last:
                say(line)
                last = line
            if ours and ready:
                say("hot set rebuilt and ready")
                return generation
            time.sleep(2.0)
        raise RuntimeError(f"the hot set was not ready within {timeout:.0f}s "
                           "(is the stack running? see the flink log)")
    finally:
        client.close()


def rebuild_cache(
    wait: bool = typer.Option(True, "--wait/--no-wait",
                              help="wait (with progress) until the rebuilt hot set is ready"),
    timeout: float = typer.Option(600.0, help="seconds to wait for the rebuild"),
) -> None:
    """Rebuild Redis' market hot set (prices, listings, auctions, leaderboards, portfolios)
    from the topics: delete every ece:md:* key and make market_data re-read from offset 0."""
    settings = get_settings()

    def say(message: str) -> None:
        console.print(f"[cyan]•[/] {message}")

    try:
        run_rebuild(settings, stop=lambda: stop_supervised_job(settings, say),
                    start=lambda: None, wait=wait, timeout=timeout, say=say)
    except RuntimeError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
