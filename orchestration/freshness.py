"""Freshness of the gold marts, as Dagster freshness checks an operator sees in the UI.

One ``freshness_check`` per mart (Dagster's last-update freshness check): the
mart's latest partition materialization, which is today's, is at most
``TODAY_STALE_AFTER`` old. The sensor rebuilds today's partition after each
landing and at least every 30 minutes, so a failed check means today's partition
is stale (daemon down, refresh runs failing); the check's metadata says by how
much. Dagster allows one freshness check per asset, so yesterday's partition is
watched through the nightly schedule's run (its failure shows on the schedule
and the asset) rather than a second, time-partition check.

``gold_freshness_sensor`` evaluates the checks on the daemon every 5 minutes.
"""

import warnings
from datetime import timedelta

from dagster import (
    AssetChecksDefinition,
    DefaultSensorStatus,
    build_last_update_freshness_checks,
    build_sensor_for_freshness_checks,
)

from orchestration.assets.gold_partitions import GOLD_ASSETS

TODAY_STALE_AFTER = timedelta(hours=1)

with warnings.catch_warnings():
    # "superseded" by FreshnessPolicy, whose evaluation needs the instance's freshness
    # daemon; these checks run (and are tested) as plain asset checks.
    warnings.simplefilter("ignore")
    FRESHNESS_CHECKS: list[AssetChecksDefinition] = list(build_last_update_freshness_checks(
        assets=GOLD_ASSETS, lower_bound_delta=TODAY_STALE_AFTER, timezone="UTC"))
    freshness_sensor = build_sensor_for_freshness_checks(
        freshness_checks=FRESHNESS_CHECKS, minimum_interval_seconds=300,
        name="gold_freshness_sensor", default_status=DefaultSensorStatus.RUNNING)
