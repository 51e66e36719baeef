"""Bronze assets: one per CDC topic, all landed by one step.

One multi-asset instead of one asset per table: a landing run opens one consumer
and one lake connection for every topic, and operators still see (and can
select) every bronze table on its own.
"""

from collections.abc import Iterator

from dagster import AssetExecutionContext, AssetKey, AssetSpec, MaterializeResult, multi_asset

from ece.contracts.topics import CAPTURED_TABLES
from orchestration.resources import LakeResource, LandingResource
from warehouse.bronze import land

GROUP = "bronze"


def bronze_key(table: str) -> AssetKey:
    return AssetKey([GROUP, table])


BRONZE_SPECS = [
    AssetSpec(bronze_key(table), group_name=GROUP, kinds={"duckdb", "kafka"},
              description=f"Raw CDC events of `{table}` (ece.public.{table}), append-only, "
                          "partitioned by day, landed exactly once.")
    for table in CAPTURED_TABLES
]


@multi_asset(specs=BRONZE_SPECS, can_subset=True, name="bronze_landing")
def bronze_landing(context: AssetExecutionContext, lake: LakeResource,
                   landing: LandingResource) -> Iterator[MaterializeResult]:
    """Land every new change event of the selected tables (rows + offsets per transaction)."""
    selected = [t for t in CAPTURED_TABLES if bronze_key(t) in context.selected_asset_keys]
    con = lake.cursor()
    try:
        reports = land(con, landing.config(), selected, progress=context.log.info)
    finally:
        con.close()
    for report in reports:
        yield MaterializeResult(
            asset_key=bronze_key(report.table),
            metadata={
                "rows_landed": report.landed,
                "tombstones_skipped": report.tombstones,
                "invalid_skipped": report.invalid,
                "batches": report.batches,
                "epoch": report.epoch,
                "next_offsets": str(dict(sorted(report.positions.items()))),
                "skipped": report.skipped or "no",
                "seconds": round(report.seconds, 3),
            },
        )
