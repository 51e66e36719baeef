"""The Dagster code location: loads, materializes in-process, checks write results."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from cdcfeed import Feed, card_row
from dagster import (
    AssetMaterialization,
    DagsterInstance,
    Definitions,
    RunRequest,
    SkipReason,
    build_sensor_context,
    materialize,
)

from ece.settings import Settings
from orchestration.assets.bronze import bronze_landing
from orchestration.assets.layers import LAYER_ASSETS
from orchestration.checks import bronze_exactly_once, silver_cards_quality
from orchestration.resources import resources_for
from orchestration.sensors import WITNESS, cdc_events_sensor
from warehouse.lake import connect


def test_definitions_load(lake_settings: Settings) -> None:
    from orchestration.definitions import build_definitions

    defs = build_definitions()
    Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"bronze/cards", "bronze/users", "silver/cards", "silver/users"} <= keys
    assert {"gold/daily_market_summary", "gold/portfolio_value_daily"} <= keys
    assert defs.resolve_job_def("refresh") and defs.resolve_job_def("land_bronze")
    assert defs.resolve_job_def("gold_daily")
    assert defs.resolve_sensor_def("cdc_events_sensor")
    assert defs.resolve_schedule_def("nightly_refresh")


def test_materialize_with_failing_quality(lake_settings: Settings, feed: Feed) -> None:
    feed.create_topic("cards")
    for i in range(20):
        feed.change("cards", "c", card_row(str(uuid.uuid4()), i + 1))
    feed.change("cards", "c", card_row(str(uuid.uuid4()), 1, rarity="mythic"))
    feed.change("cards", "c", card_row(str(uuid.uuid4()), 1, owner_id=None))
    feed.flush()
    instance = DagsterInstance.ephemeral()
    resources = resources_for(lake_settings)
    result = materialize([bronze_landing, *LAYER_ASSETS, bronze_exactly_once,
                          silver_cards_quality], resources=resources, instance=instance,
                         partition_key=datetime.now(UTC).date().isoformat())
    assert result.success  # failed checks are reported, they do not fail the run
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed
              for e in result.get_asset_check_evaluations()}
    assert checks[("bronze/cards", "exactly_once")] is True
    assert checks[("silver/cards", "id_unique")] is True
    assert checks[("silver/cards", "rarity_in_set")] is False
    assert checks[("silver/cards", "owner_id_not_null")] is False
    con = connect(lake_settings, read_only=True)
    stored = dict(con.execute(
        'SELECT "check", success FROM ece.quality.check_results WHERE run_id = ?',
        [result.run_id]).fetchall())
    assert stored == {"id_not_null": True, "id_unique": True, "rarity_in_set": False,
                      "owner_id_not_null": False}
    observed = con.execute(
        "SELECT observed_value, details->>'partial_unexpected_list' FROM "
        "ece.quality.check_results WHERE \"check\" = 'rarity_in_set'").fetchone()
    assert observed is not None and "1 unexpected" in observed[0] and "mythic" in observed[1]
    assert con.execute("SELECT count(*) FROM ece.silver.cards").fetchone() == (22,)


def test_sensor_asks_only_when_events_wait(lake_settings: Settings, feed: Feed) -> None:
    from warehouse.bronze import land

    resources = resources_for(lake_settings)
    instance = DagsterInstance.ephemeral()

    def evaluate() -> RunRequest | SkipReason:
        context = build_sensor_context(instance=instance, resources=resources)
        return cdc_events_sensor(context)  # type: ignore[return-value]

    # today's gold partitions just built: only waiting events make it ask
    instance.report_runless_asset_event(
        AssetMaterialization(WITNESS, partition=datetime.now(UTC).date().isoformat()))
    assert isinstance(evaluate(), SkipReason)
    feed.create_topic("cards", 1)
    for i in range(30):
        feed.change("cards", "c", card_row(str(uuid.uuid4()), i + 1))
    feed.flush()
    assert isinstance(evaluate(), RunRequest)
    config = resources["landing"].config()
    con = connect(lake_settings)
    # a capped run stops inside the broker's last record batch: still pending
    capped = land(con, config.__class__(**{**config.__dict__, "max_messages_per_topic": 10}),
                  ["cards"])[0]
    assert capped.landed == 10
    assert isinstance(evaluate(), RunRequest)
    land(con, config, ["cards"])
    assert isinstance(evaluate(), SkipReason)
