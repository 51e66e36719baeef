"""Asset checks: exactly-once landing of bronze, and the GE suite of silver.cards.

The GE outcomes are also written to ``ece.quality.check_results`` so quality is
queryable next to the data, not only in Dagster's instance.
"""

from collections.abc import Iterator

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    multi_asset_check,
)

from ece.contracts.topics import CAPTURED_TABLES
from orchestration.assets.bronze import bronze_key
from orchestration.resources import LakeResource
from quality import results, silver_cards
from warehouse.lake import table_exists

EXACTLY_ONCE = "exactly_once"


@multi_asset_check(
    specs=[AssetCheckSpec(EXACTLY_ONCE, asset=bronze_key(t),
                          description="no (epoch, partition, offset) landed twice")
           for t in CAPTURED_TABLES],
    can_subset=True,
    name="bronze_exactly_once",
)
def bronze_exactly_once(context: AssetCheckExecutionContext,
                        lake: LakeResource) -> Iterator[AssetCheckResult]:
    """Each Kafka record appears once in bronze: the proof the offset commit works."""
    con = lake.cursor(read_only=True)
    try:
        for key in context.selected_asset_check_keys:
            table = key.asset_key.path[-1]
            if not table_exists(con, "bronze", table):
                yield AssetCheckResult(asset_key=key.asset_key, check_name=EXACTLY_ONCE,
                                       passed=True, metadata={"skipped": "nothing landed yet"})
                continue
            row = con.execute(
                f'SELECT count(*), count(DISTINCT (_epoch, _partition, _offset)) '
                f'FROM ece.bronze."{table}"').fetchone()
            total, distinct = (int(row[0]), int(row[1])) if row else (0, 0)
            yield AssetCheckResult(asset_key=key.asset_key, check_name=EXACTLY_ONCE,
                                   passed=total == distinct,
                                   metadata={"rows": total, "duplicates": total - distinct})
    finally:
        con.close()


SILVER_CARDS = AssetKey(silver_cards.ASSET.split("/"))


@multi_asset_check(
    specs=[AssetCheckSpec(c.name, asset=SILVER_CARDS, description=c.description,
                          blocking=False) for c in silver_cards.CHECKS],
    name="silver_cards_quality",
)
def silver_cards_quality(context: AssetCheckExecutionContext,
                         lake: LakeResource) -> Iterator[AssetCheckResult]:
    """great-expectations suite on silver.cards, recorded in ece.quality.check_results."""
    con = lake.cursor()
    try:
        if not table_exists(con, "silver", "cards"):
            for c in silver_cards.CHECKS:
                yield AssetCheckResult(check_name=c.name, passed=True,
                                       metadata={"skipped": "silver.cards not built yet"})
            return
        columns = ", ".join(f"CAST({c} AS VARCHAR) AS {c}" for c in silver_cards.COLUMNS)
        df = con.execute(f"SELECT {columns} FROM {silver_cards.TABLE}").df()
        outcomes = silver_cards.validate(df)
        results.record(con, context.run.run_id, silver_cards.ASSET, outcomes)
    finally:
        con.close()
    for outcome in outcomes:
        context.log.info(f"{silver_cards.ASSET} {outcome.check}: "
                         f"{'ok' if outcome.success else 'FAILED'} ({outcome.observed_value})")
        yield AssetCheckResult(
            check_name=outcome.check, passed=outcome.success,
            severity=AssetCheckSeverity.ERROR,
            metadata={"observed_value": outcome.observed_value,
                      "details": outcome.details_json, "rows": len(df)})
