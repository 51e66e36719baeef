"""``ece warehouse``: refresh, sql and shell against the real lake."""

from __future__ import annotations

import subprocess
import sys
import uuid

from cdcfeed import Feed, card_row
from typer.testing import CliRunner

from ece.settings import REPO_ROOT, Settings
from ops.cli.warehouse import warehouse_app


def test_refresh_then_sql_and_shell(lake_settings: Settings, feed: Feed) -> None:
    feed.create_topic("cards")
    for i in range(5):
        feed.change("cards", "c", card_row(str(uuid.uuid4()), i + 1, set_name="Beta"))
    feed.flush()
    runner = CliRunner()
    refreshed = runner.invoke(warehouse_app, ["refresh", "--no-record"])
    assert refreshed.exit_code == 0, refreshed.output
    assert "silver/cards" in refreshed.output and "+5 rows" in refreshed.output

    result = runner.invoke(warehouse_app, [
        "sql", "SELECT set_name, count(*) AS n FROM silver.cards GROUP BY ALL"])
    assert result.exit_code == 0, result.output
    assert "Beta" in result.output and "5" in result.output and "1 rows" in result.output

    # read-only: a write is refused, with a message and a non-zero exit
    refused = runner.invoke(warehouse_app, ["sql", "DROP TABLE ece.silver.cards"])
    assert refused.exit_code == 1 and "error" in refused.output

    shell = subprocess.run(
        [sys.executable, "-c", "from ops.cli.warehouse import warehouse_app; warehouse_app()",
         "shell"],
        input="SELECT 'rows=' || count(*) FROM ece.silver.cards;\n", capture_output=True,
        text=True, timeout=60, cwd=REPO_ROOT)
    assert shell.returncode == 0, shell.stderr
    assert "rows=5" in shell.stdout
