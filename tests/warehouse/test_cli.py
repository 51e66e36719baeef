"""``ece warehouse``: refresh, sql and shell against the real lake."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
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
    again = runner.invoke(warehouse_app, ["refresh", "--no-record"])
    assert again.exit_code == 0, again.output
    assert "unchanged" in again.output  # nothing landed: silver.cards kept as it was

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


def test_refresh_records_in_the_dagster_instance(lake_settings: Settings, feed: Feed,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process refresh shows in the UI like a run: materializations in the instance."""
    from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

    from ops.stack.dagster import write_instance

    home = write_instance(lake_settings)
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # the CLI sets it for Dagster otherwise
    feed.create_topic("cards")
    for i in range(3):
        feed.change("cards", "c", card_row(str(uuid.uuid4()), i + 1))
    feed.flush()
    refreshed = CliRunner().invoke(warehouse_app, ["refresh"])
    assert refreshed.exit_code == 0, refreshed.output
    with DagsterInstance.from_config(str(home)) as instance:
        for key in (["bronze", "cards"], ["silver", "cards"]):
            records = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=AssetKey(key)), limit=5).records
            assert len(records) == 1, key
        bronze = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(["bronze", "cards"])), limit=1).records[0]
        meta = bronze.asset_materialization.metadata  # type: ignore[union-attr]
        assert meta["rows_landed"].value == 3
