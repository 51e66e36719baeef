"""Jobs: land only, the whole refresh (land, silver, one day of gold, checks), gold only.

``refresh`` mixes unpartitioned assets (bronze, silver) with the daily gold
partitions: a run of it names one date (today for the sensor and the CLI,
yesterday for the nightly schedule) and builds that date's gold partitions after
landing and silver. ``gold_daily`` is what a backfill runs: gold only, over a
range of dates, in one run (the assets' single-run backfill policy).
"""

from dagster import AssetSelection, define_asset_job

from orchestration.assets.gold_partitions import GROUP

land_job = define_asset_job(
    "land_bronze", selection=AssetSelection.groups("bronze"),
    description="Land new CDC events into ece.bronze.* (exactly once).")

REPORTS_GROUP = "reports"  # orchestration.assets.reports.GROUP (that module imports this one)

refresh_job = define_asset_job(
    "refresh", selection=AssetSelection.all() - AssetSelection.groups(REPORTS_GROUP),
    description="Land new events, rebuild silver and one date's gold partitions, run every "
                "check: what the sensor, the schedule and `ece warehouse refresh` run. The "
                "reports have their own nightly job, after the day is closed.")

gold_job = define_asset_job(
    "gold_daily", selection=AssetSelection.groups(GROUP),
    description="Rebuild the gold marts' partitions of a date or a range of dates "
                "(`ece warehouse backfill`, or a backfill from the UI).")
