"""The Dagster code location of ECE (loaded by ``workspace.yaml``).

Steps run in-process: the pipeline is a handful of SQL statements against one
lake, so a process per step would spend more time importing than working and
would pay the ~1 s extension load + ATTACH each time.
"""

from dagster import Definitions, colored_console_logger, in_process_executor

from ece.settings import get_settings
from orchestration.assets.bronze import bronze_landing
from orchestration.assets.layers import LAYER_ASSETS
from orchestration.checks import bronze_exactly_once, silver_cards_quality
from orchestration.jobs import land_job, refresh_job
from orchestration.loggers import progress_logger
from orchestration.resources import resources_for
from orchestration.schedules import nightly_refresh
from orchestration.sensors import cdc_events_sensor


def build_definitions() -> Definitions:
    """Definitions for the current settings (tests build them after setting ECE_*)."""
    return Definitions(
        assets=[bronze_landing, *LAYER_ASSETS],
        asset_checks=[bronze_exactly_once, silver_cards_quality],
        jobs=[land_job, refresh_job],
        sensors=[cdc_events_sensor],
        schedules=[nightly_refresh],
        resources=resources_for(get_settings()),
        executor=in_process_executor,
        # console stays the default; the CLI picks progress through run config
        loggers={"console": colored_console_logger, "progress": progress_logger},
    )


defs = build_definitions()
