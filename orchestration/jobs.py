"""Jobs: land only, or the whole refresh (land, rebuild silver/gold, run checks)."""

from dagster import AssetSelection, define_asset_job

land_job = define_asset_job(
    "land_bronze", selection=AssetSelection.groups("bronze"),
    description="Land new CDC events into ece.bronze.* (exactly once).")

refresh_job = define_asset_job(
    "refresh", selection=AssetSelection.all(),
    description="Land new events, rebuild silver (and gold), run every check: "
                "what the sensor, the schedule and `ece warehouse refresh` run.")
