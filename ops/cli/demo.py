"""``ece demo``: drive realistic traffic against the API, then check the invariants.

The command only reads its options; the demo itself is ``ops.demo`` (client,
traffic, invariants, report), imported when the command runs.
"""

from __future__ import annotations

import asyncio

import typer

from ece.settings import Settings, get_settings

DEFAULT_USERS = 10
DEFAULT_CARDS = 50
DEFAULT_MINUTES = 1.0
# Below the default per-user limit (600/min): a paced demo user is never throttled.
DEFAULT_USER_RPS = 8.0


def demo(
    users: int = typer.Option(DEFAULT_USERS, "--users", min=2, help="simulated users"),
    cards: int = typer.Option(DEFAULT_CARDS, "--cards", min=1, help="cards issued to them"),
    minutes: float = typer.Option(
        DEFAULT_MINUTES, "--minutes", min=0.0, help="how long to drive traffic (fractions allowed)"
    ),
    api: str = typer.Option("", "--api", help="API base URL (default: the local stack's)"),
    concurrency: int = typer.Option(
        0, "--concurrency", min=0, help="concurrent clients (default: one per user, at most 16)"
    ),
    user_rps: float = typer.Option(
        DEFAULT_USER_RPS,
        "--user-rps",
        min=0.0,
        help="requests per second per simulated user (think time; 0: as fast as possible)",
    ),
    admin_login: str = typer.Option(
        "", "--admin-login", help="admin login (default: the seed admin)"
    ),
    admin_password: str = typer.Option(
        "",
        "--admin-password",
        envvar="ECE_DEMO_ADMIN_PASSWORD",
        help="default: data/secrets/admin_password",
    ),
    seed: int | None = typer.Option(None, "--seed", help="random seed for a reproducible mix"),
) -> None:
    """Drive realistic traffic (registrations, deposits, listings, purchases, auctions,
    bids, trades, mints) and check the ledger invariants at the end (exit 1 if broken).

    The report gives p50/p99 per request type and per route, the server errors (5xx)
    and, against a local `ece up`, the PSS of each part at the start, middle and end."""
    from ops.demo.client import SetupFailed, api_base
    from ops.demo.memory import MemorySampler
    from ops.demo.report import print_report
    from ops.demo.traffic import run_demo
    from ops.seed import ensure_admin

    settings: Settings = get_settings()
    if not admin_password:
        admin_login, admin_password = ensure_admin(settings)
    try:
        report = asyncio.run(
            run_demo(
                api=api or api_base(settings),
                admin_login=admin_login or "admin",
                admin_password=admin_password,
                users=users,
                cards=cards,
                seconds=minutes * 60,
                concurrency=concurrency or min(users, 16),
                database_url=settings.database_url,
                user_rps=user_rps,
                say=lambda line: typer.echo(line, err=False),
                seed=seed,
                # PSS of the local `ece up`'s parts (none when it runs elsewhere)
                memory=MemorySampler(settings),
            )
        )
    except SetupFailed as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    print_report(report, typer.echo)
    if not report.invariants.hold:
        raise typer.Exit(1)


demo_app = typer.Typer(help="Drive realistic traffic against the API.", add_completion=False)
demo_app.command()(demo)
