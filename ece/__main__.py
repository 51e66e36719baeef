"""`python -m ece` is the `ece` command."""

from ece.cli import app

app(prog_name="ece")
