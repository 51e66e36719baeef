"""The `ece` command: run the platform, administer it, follow the stream, query the lake.

Sub-apps import their heavy dependencies inside their commands, so `ece --help`
and `ece status` stay fast.
"""

import typer

from ece.log import configure
from ops.cli import stack
from ops.cli.admin import admin_app
from ops.cli.backup import backup_app
from ops.cli.chain import chain_app
from ops.cli.chaos import chaos
from ops.cli.check import check
from ops.cli.demo import demo
from ops.cli.keys import keys_app
from ops.cli.rebuild import rebuild_cache
from ops.cli.tls import tls_app
from ops.cli.topics import topics_app
from ops.cli.warehouse import warehouse_app

app = typer.Typer(help="ECE, the Elite Card Exchange: platform commands.", no_args_is_help=True)
app.command()(stack.up)
app.command()(stack.down)
app.command()(stack.status)
app.command()(demo)
app.command("rebuild-cache")(rebuild_cache)
app.command("check")(check)
app.command("chaos")(chaos)
app.add_typer(admin_app, name="admin", help="Administer users.")
app.add_typer(topics_app, name="topics", help="List and follow the Kafka topics.")
app.add_typer(warehouse_app, name="warehouse", help="Query and refresh the lakehouse.")
app.add_typer(keys_app, name="keys", help="Rotate and inspect the key-encryption keys (KEKs).")
app.add_typer(chain_app, name="chain", help="Compare the database with the Solana chain.")
app.add_typer(backup_app, name="backup", help="Back up and restore everything that holds state.")
app.add_typer(tls_app, name="tls", help="Local TLS certificates for the API and PostgreSQL.")


@app.callback()
def main(log_level: str = typer.Option("INFO", help="log level for this command")) -> None:
    configure(log_level)
