"""Silver (and unpartitioned gold) assets, one per ``warehouse/<layer>/<table>.sql`` file.

Upstream assets are read from the SQL's ``ece.<layer>.<table>`` references, so
the lineage graph in the UI is exactly what the SQL reads. Daily gold marts are
in :mod:`orchestration.assets.gold_partitions`; ``LAYER_ASSETS`` holds both.

A silver table is rebuilt whole, but only when its inputs changed: the build
records the lake snapshot of its bronze inputs (:mod:`warehouse.builds`), so a
refresh after a delta on three topics rebuilds only the tables reading them.
"""

from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, MaterializeResult, asset

from orchestration.assets.gold_partitions import GOLD_ASSETS
from orchestration.resources import LakeResource
from warehouse import steps
from warehouse.partitions import is_partitioned
from warehouse.sql import LAYERS, SqlModel, models


def _asset_for(sql_model: SqlModel) -> AssetsDefinition:
    deps = [AssetKey([layer, table]) for layer, table in sql_model.upstream]

    @asset(key=AssetKey([sql_model.layer, sql_model.name]), deps=deps,
           group_name=sql_model.layer, kinds={"duckdb", "sql"},
           description=sql_model.description or None,
           metadata={"sql_file": str(sql_model.path.name), "table": sql_model.table})
    def _build(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
        con = lake.cursor()
        try:
            metadata = steps.silver(con, sql_model, context.log.info)
        finally:
            con.close()
        return MaterializeResult(metadata=metadata)

    return _build


UNPARTITIONED_ASSETS: list[AssetsDefinition] = [
    _asset_for(m) for layer in LAYERS for m in models(layer) if not is_partitioned(m)
]
LAYER_ASSETS: list[AssetsDefinition] = [*UNPARTITIONED_ASSETS, *GOLD_ASSETS]
