"""`python -m ece` is the `ece` command."""

from ops.cli import app

app(prog_name="ece")
