"""``ece warehouse refresh`` in-process: the assets' work on one lake connection, no run.

Profiling the refresh after a small delta (figures in docs/lake.md) showed the
Dagster run itself (plan, ~400 event-log writes and commits in the instance's
SQLite, a cursor and a catalog round trip per step) cost more than landing and
building together. This path does the same steps in the same order with the same
functions as the assets (:func:`warehouse.bronze.land`, :mod:`warehouse.steps`),
on one lake connection, for today's gold partitions; then records each
materialization in the Dagster instance (:func:`record`) so the UI, the sensor
and the freshness checks see it exactly as if the refresh job had run. Quality
suites are not run here (``ece warehouse refresh --checks`` runs the job).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from dagster import AssetKey, AssetMaterialization, DagsterInstance

from ece.contracts.topics import CAPTURED_TABLES
from ece.settings import Settings
from orchestration.assets.bronze import bronze_key
from orchestration.resources import resources_for
from warehouse import steps
from warehouse.bronze import land
from warehouse.lake import connect, lake_tables
from warehouse.partitions import is_partitioned
from warehouse.sql import LAYERS, SqlModel, models

Log = Callable[[str], None]


@dataclass
class Step:
    """One asset's outcome: its key, the partition built (gold) and its metadata."""

    key: AssetKey
    metadata: dict[str, Any]
    partition: str | None = None


@dataclass
class Refreshed:
    steps: list[Step] = field(default_factory=list)


def ordered(layer_models: list[SqlModel]) -> list[SqlModel]:
    """Models with every model they read (same layer) before them."""
    names = {m.name for m in layer_models}
    done: list[SqlModel] = []
    pending = list(layer_models)
    while pending:
        for m in pending:
            needs = {t for lay, t in m.upstream if lay == m.layer and t in names}
            if needs <= {d.name for d in done}:
                done.append(m)
                pending.remove(m)
                break
        else:
            raise RuntimeError(f"cycle among {[m.table for m in pending]}")
    return done


def _prefixed(log: Log, layer: str) -> Log:
    def say(message: str) -> None:
        log(f"[{layer}] {message}")
    return say


def refresh(settings: Settings, day: date, log: Log, land_only: bool = False) -> Refreshed:
    """Land, rebuild silver (changed inputs only) and ``day``'s gold partitions."""
    landing = resources_for(settings)["landing"].config()
    out = Refreshed()
    con = connect(settings)
    try:
        for report in land(con, landing, CAPTURED_TABLES, progress=lambda m: log(f"[bronze] {m}")):
            out.steps.append(Step(bronze_key(report.table), {
                "rows_landed": report.landed, "tombstones_skipped": report.tombstones,
                "invalid_skipped": report.invalid, "batches": report.batches,
                "epoch": report.epoch,
                "next_offsets": str(dict(sorted(report.positions.items()))),
                "skipped": report.skipped or "no", "seconds": round(report.seconds, 3)}))
        if land_only:
            return out
        present = lake_tables(con)
        for layer in LAYERS:
            say = _prefixed(log, layer)
            for m in ordered(models(layer)):
                if is_partitioned(m):
                    meta = steps.gold(con, m, [day], settings.lake_catalog, say, present)
                    out.steps.append(Step(AssetKey([m.layer, m.name]), meta, day.isoformat()))
                else:
                    meta = steps.silver(con, m, say, present)
                    out.steps.append(Step(AssetKey([m.layer, m.name]), meta))
                if meta.get("skipped") == "no":
                    present.add((m.layer, m.name))
    finally:
        con.close()
    return out


def record(instance: DagsterInstance, refreshed: Refreshed) -> None:
    """Report each step as a materialization (partitioned for gold), as the job's run would."""
    for step in refreshed.steps:
        if step.metadata.get("skipped") not in (None, "no"):
            continue  # nothing built (no topic, inputs missing): no materialization either
        instance.report_runless_asset_event(AssetMaterialization(
            step.key, partition=step.partition,
            metadata={**step.metadata, "trigger": "ece warehouse refresh"}))
