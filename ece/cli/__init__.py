"""The `ece` command: run the platform, administer it, query the lakehouse."""

from __future__ import annotations

import typer

from ece.cli import stack
from ece.log import configure

app = typer.Typer(help="ECE, the Elite Card Exchange: platform commands.", no_args_is_help=True)
app.command()(stack.up)
app.command()(stack.down)
app.command()(stack.status)


def _mount_optional() -> None:
    """Sub-apps from the domains (admin, warehouse, demo)."""
    from ece.cli.admin import admin_app

    app.add_typer(admin_app, name="admin", help="Administer users.")
    try:
        from ece.cli.warehouse import warehouse_app
    except ImportError:  # pragma: no cover - wired once the warehouse lands
        return
    app.add_typer(warehouse_app, name="warehouse", help="Query and refresh the lakehouse.")


@app.callback()
def main(log_level: str = typer.Option("INFO", help="log level for this command")) -> None:
    configure(log_level)


try:
    _mount_optional()
except ImportError:  # pragma: no cover - during bootstrap of the repo
    pass
