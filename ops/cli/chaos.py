"""``ece chaos``: kill -9 each part of a running ``ece up`` under ``ece demo`` load.

For operators rehearsing failures on a staging stack (and the chaos test): the
command only reads its options and prints; the work is ``ops.chaos``.
Exit 0 when every part healed and every check agrees, 1 when not, 2 when there is
no running ``ece up`` or the demo cannot start.
"""

from __future__ import annotations

import time

import typer
from rich.console import Console

from ece.settings import get_settings
from ops.chaos.plan import DEFAULT_PARTS


def chaos(
    parts: str = typer.Option(",".join(DEFAULT_PARTS), "--parts",
                              help="comma-separated parts to kill, in this order"),
    load: float = typer.Option(5.0, "--load", min=0.0,
                               help="seconds of demo traffic before each kill"),
    minutes: float = typer.Option(0.0, "--minutes", min=0.0,
                                  help="keep the traffic going at least this long overall"),
    heal_timeout: float = typer.Option(300.0, "--heal-timeout", min=1.0,
                                       help="seconds a killed part may take to heal"),
    settle: float = typer.Option(60.0, "--settle", min=0.0,
                                 help="seconds the pipelines get to settle before checking "
                                      "(also ece check's --settle)"),
    users: int = typer.Option(6, "--users", min=2, help="simulated demo users"),
    cards: int = typer.Option(24, "--cards", min=1, help="cards issued to them"),
    user_rps: float = typer.Option(4.0, "--user-rps", min=0.0,
                                   help="requests per second per simulated user"),
    seed: int | None = typer.Option(None, "--seed", help="random seed for the demo's mix"),
) -> None:
    """Kill -9 each part in turn under demo traffic; wait until healthy; check everything."""
    from ece.retry import backoff_delay
    from ops.chaos import heal, kill, plan, report, verify
    from ops.chaos.load import BackgroundLoad, LoadFailed
    from ops.stack.supervision import read_state

    settings = get_settings()
    out = Console(stderr=True)

    def say(line: str) -> None:
        out.print(f"[cyan]•[/] {line}", highlight=False)

    wanted = [p.strip() for p in parts.split(",") if p.strip()]
    try:
        targets, skipped = plan.plan(read_state(settings), wanted)
    except plan.NoPlatform as exc:
        typer.echo(f"error: {exc}; start it with `ece up`", err=True)
        raise typer.Exit(2) from None
    for name, why in skipped.items():
        say(f"skipping {name}: {why}")
    # A platform just started (or busy) may answer a health probe late: wait, bounded.
    deadline, attempt = time.monotonic() + heal_timeout, 0
    while True:
        unhealthy = {n: d for n, (ok, d) in heal.platform_health(settings).items() if not ok}
        if not unhealthy or time.monotonic() >= deadline:
            break
        attempt += 1
        say(f"waiting for a healthy platform before the first kill: {sorted(unhealthy)}")
        time.sleep(backoff_delay(attempt, cap=10.0))
    if unhealthy:
        typer.echo(f"error: not healthy before any kill: {unhealthy}", err=True)
        raise typer.Exit(2)
    traffic = BackgroundLoad(settings, users=users, cards=cards, concurrency=min(users, 8),
                             user_rps=user_rps, say=say, seed=seed)
    started = time.monotonic()
    try:
        traffic.start()
    except LoadFailed as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    healed: list[heal.Healed] = []
    for name in targets:
        time.sleep(load)
        killed = kill.kill_part(settings, name)
        say(f"killed {name} (pid {killed.pid}, group) at {killed.wall}")
        result = heal.wait_healed(settings, killed, heal_timeout, say)
        healed.append(result)
        if result.ok:
            say(f"{name} healthy again after {result.seconds:.1f}s "
                f"(restarts {result.restarts}, pid {result.new_pid})")
        else:
            say(f"[red]{name} NOT healthy after {result.seconds:.0f}s: {result.unhealthy}")
            break  # the rest would be measured on a broken platform
    time.sleep(max(0.0, minutes * 60 - (time.monotonic() - started)))
    say("stopping the traffic ...")
    verdicts: list[verify.Verdict] = []
    try:
        demo = traffic.stop()
    except LoadFailed as exc:
        demo = None
        verdicts.append(verify.Verdict("ece demo", False, str(exc)))
    if demo is not None:
        say(f"demo: {demo.requests} requests, {demo.errors} errors while parts were down "
            f"({demo.server_errors} 5xx)")
    say(f"letting the pipelines settle ({settle:.0f}s) ...")
    time.sleep(settle)
    verdicts.append(verify.refresh_lake(say))
    verdicts.append(verify.run_check(settle, say))
    if demo is not None:
        verdicts.extend(verify.lake_against_rest(settings, demo))
        verdicts.append(verify.invariants(settings, demo))
    report.render(healed, verdicts, Console(width=200))
    if not report.all_ok(healed, verdicts) or len(healed) != len(targets):
        raise typer.Exit(1)
