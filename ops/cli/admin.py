"""``ece admin ...``: bootstrap administration from the command line.

The first admin cannot be created through the API (only admins grant roles), so
``ece admin create`` runs the same service as ``POST /auth/register`` and then
grants the admin role with its audit event, in one transaction, against the
database named by the settings.
"""

import asyncio

import typer

admin_app = typer.Typer(help="Administer users.", no_args_is_help=True)


@admin_app.callback()
def _admin() -> None:
    """Administer users (a callback keeps ``admin`` a group: ``ece admin create``)."""


async def _create(email: str, username: str, password: str) -> str:
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from api.audit.chain import AuditContext
    from api.users.service import create_admin
    from ece.settings import get_settings

    # Its own short-lived engine: the command may run beside an app in the same process.
    engine = create_async_engine(get_settings().sqlalchemy_url)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            user = await create_admin(
                session,
                AuditContext(actor_id=None, ip="cli"),
                email=email,
                username=username,
                password=password,
            )
            return str(user.id)
    finally:
        await engine.dispose()


@admin_app.command("create")
def create(
    email: str = typer.Option(..., "--email", help="login email (stored lowercased)"),
    username: str = typer.Option(..., "--username", help="3-32 chars: letters, digits, _ . -"),
    password: str = typer.Option(
        ...,
        "--password",
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        help="at least 10 characters (prompted when omitted)",
    ),
) -> None:
    """Create an admin user (exit code 1: duplicate email or username; 2: invalid input)."""
    from pydantic import ValidationError

    from api.auth.schemas import RegisterIn
    from api.core.problems import Problem

    try:
        body = RegisterIn(email=email, username=username, password=password)
    except ValidationError as exc:
        for err in exc.errors():
            typer.echo(f"invalid {'.'.join(map(str, err['loc']))}: {err['msg']}", err=True)
        raise typer.Exit(2) from None
    try:
        user_id = asyncio.run(_create(body.email, body.username, body.password))
    except Problem as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"admin {body.username} created: {user_id}")
