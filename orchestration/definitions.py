"""The Dagster code location of ECE (loaded by ``workspace.yaml``).

Steps run in-process: the pipeline is a handful of SQL statements against one
lake, so a process per step would spend more time importing than working and
would pay the ~1 s extension load + ATTACH each time.
"""

from dagster import AssetChecksDefinition, Definitions, colored_console_logger, in_process_executor

from ece.settings import get_settings
from orchestration import checks
from orchestration.assets.bronze import bronze_landing
from orchestration.assets.consistency import (
    CONSISTENCY_ASSETS,
    CONSISTENCY_JOBS,
    CONSISTENCY_SCHEDULES,
)
from orchestration.assets.layers import LAYER_ASSETS
from orchestration.assets.reports import REPORT_ASSETS, REPORT_JOBS, REPORT_SCHEDULES
from orchestration.freshness import FRESHNESS_CHECKS, freshness_sensor
from orchestration.jobs import gold_job, land_job, refresh_job
from orchestration.loggers import progress_logger
from orchestration.resources import resources_for
from orchestration.schedules import nightly_refresh
from orchestration.sensors import cdc_events_sensor


def quality_checks() -> list[AssetChecksDefinition]:
    """The quality checks of :mod:`orchestration.checks` (its list when it exports one)."""
    exported = getattr(checks, "ASSET_CHECKS", None)
    if exported is not None:
        return list(exported)
    return [checks.bronze_exactly_once, checks.silver_cards_quality]


def build_definitions() -> Definitions:
    """Definitions for the current settings (tests build them after setting ECE_*)."""
    return Definitions(
        assets=[bronze_landing, *LAYER_ASSETS, *REPORT_ASSETS, *CONSISTENCY_ASSETS],
        asset_checks=[*quality_checks(), *FRESHNESS_CHECKS],
        jobs=[land_job, refresh_job, gold_job, *REPORT_JOBS, *CONSISTENCY_JOBS],
        sensors=[cdc_events_sensor, freshness_sensor],
        schedules=[nightly_refresh, *REPORT_SCHEDULES, *CONSISTENCY_SCHEDULES],
        resources=resources_for(get_settings()),
        executor=in_process_executor,
        # console stays the default; the CLI picks progress through run config
        loggers={"console": colored_console_logger, "progress": progress_logger},
    )


defs = build_definitions()
