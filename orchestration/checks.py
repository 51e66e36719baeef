"""Asset checks: exactly-once landing of bronze, and a GE suite on every silver/gold table.

One multi-asset check per table, generated from the declarative registry
(:mod:`quality.registry`): its checks are the suite's expectations, and it depends
on the tables its rules read, so a refresh runs it after those are rebuilt. Every
outcome is also written to ``ece.quality.check_results`` (queryable next to the
data, read by ``ece status``) and GE's Data Docs are rebuilt under
``<data_dir>/quality/docs``. Failed checks never fail the run: they are reported.
:data:`ASSET_CHECKS` is everything ``definitions.py`` registers.
"""

from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    multi_asset_check,
)

from ece.contracts.topics import CAPTURED_TABLES
from orchestration.assets.bronze import bronze_key
from orchestration.resources import LakeResource
from quality import docs, results
from quality.registry import SUITES
from quality.runner import validate_table
from quality.tables import TableSuite
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


def _quality_check(suite: TableSuite) -> AssetChecksDefinition:
    """The Dagster check of one table's suite."""
    asset_key = AssetKey([suite.layer, suite.name])
    deps = [AssetKey([layer, table]) for layer, table in suite.reads]
    warn_only = {r.name for r in suite.rules if r.warn_only}

    @multi_asset_check(
        specs=[AssetCheckSpec(c.name, asset=asset_key, description=c.description,
                              additional_deps=deps, blocking=False) for c in suite.checks()],
        name=f"{suite.suite_name}_quality",
        description=f"great-expectations suite of {suite.table} (quality/registry.py)",
    )
    def _check(context: AssetCheckExecutionContext,
               lake: LakeResource) -> Iterator[AssetCheckResult]:
        settings = lake.settings()
        root = docs.root_of(settings)
        con = lake.cursor()
        try:
            run = validate_table(con, suite, {"fee_bps": settings.fee_bps}, root)
            for outcome in run.outcomes:
                outcome.details["severity"] = "warn" if outcome.check in warn_only else "error"
            if run.outcomes:
                results.record(con, context.run.run_id, suite.asset, run.outcomes)
        finally:
            con.close()
        index = docs.build(root, suite.suite_name) if run.outcomes else None
        for name, why in run.skipped.items():
            yield AssetCheckResult(asset_key=asset_key, check_name=name, passed=True,
                                   metadata={"skipped": why})
        for outcome in run.outcomes:
            context.log.info(f"{suite.asset} {outcome.check}: "
                             f"{'ok' if outcome.success else 'FAILED'} ({outcome.observed_value})")
            metadata: dict[str, Any] = {"observed_value": outcome.observed_value,
                        "details": outcome.details_json, "rows": run.rows}
            if index is not None:
                metadata["data_docs"] = MetadataValue.path(str(index))
            yield AssetCheckResult(
                asset_key=asset_key, check_name=outcome.check, passed=outcome.success,
                severity=AssetCheckSeverity.WARN if outcome.check in warn_only
                else AssetCheckSeverity.ERROR,
                metadata=metadata)

    return _check


QUALITY_CHECKS: list[AssetChecksDefinition] = [_quality_check(s) for s in SUITES]
_BY_NAME = {c.node_def.name: c for c in QUALITY_CHECKS}
# The historical name (definitions.py and tests import it): the suite of silver.cards.
silver_cards_quality = _BY_NAME["silver_cards_quality"]

ASSET_CHECKS: list[AssetChecksDefinition] = [bronze_exactly_once, *QUALITY_CHECKS]
