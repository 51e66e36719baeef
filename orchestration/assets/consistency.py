"""Consistency across stores in Dagster: the asset ``quality/consistency`` and the hourly
chain reconciliation.

``quality/consistency`` depends on every silver asset. ``refresh`` selects every
asset, so each refresh (the sensor's, the nightly one, ``ece warehouse refresh
--checks``) runs it right after silver was rebuilt, in the same run and in
lineage order, and the UI shows it downstream of the tables it compares. A run
status sensor on ``refresh`` would have started a second run per refresh and
left the comparison out of the refresh's own lineage. The comparisons are
:mod:`quality.consistency`'s; the market figures and the chain come from the
API's own definitions (its database fallback, its reconciler), wired here
because this floor may use the API. A disagreement never fails the run: it
fails the asset check ``stores_agree`` (visible in the UI), and the report is
the materialization's metadata.

``chain_reconciliation`` runs ``api/nfts/reconcile.py`` every hour (schedule
``hourly_chain_reconciliation``), publishing each verdict to
``ece.chain.reconciliation`` like ``ece chain reconcile``; its summary is the
op's output metadata, and a mismatch fails the run so it shows red.
"""

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    DefaultScheduleStatus,
    Failure,
    JobDefinition,
    MaterializeResult,
    MetadataValue,
    OpExecutionContext,
    Output,
    ScheduleDefinition,
    asset,
    job,
    op,
)

from ece.settings import Settings
from orchestration.assets.layers import UNPARTITIONED_ASSETS
from orchestration.resources import LakeResource
from quality.consistency import chain, market, runner
from quality.consistency.model import Report, Row, Unreachable

ASSET_KEY = AssetKey(["quality", "consistency"])
CHECK = "stores_agree"
HOURLY = "0 * * * *"
SILVER_KEYS = [k for a in UNPARTITIONED_ASSETS for k in a.keys if k.path[0] == "silver"]


class HotMarket:
    """The figures the API serves from the Redis hot set (``None``: not ready)."""

    def __init__(self, session: Any, redis: Any) -> None:
        self.session, self.redis = session, redis

    async def price(self, card_id: str) -> dict[str, Any] | None:
        from api.marketdata import service

        out, source = await service.card_price(self.session, self.redis, uuid.UUID(card_id))
        return out.model_dump() if source == "hot" else None

    async def stats(self, set_name: str | None, rarity: str | None) -> dict[str, Any] | None:
        from api.marketdata import service

        out, source = await service.market_stats(self.session, self.redis, set_name, rarity)
        return out.model_dump() if source == "hot" else None

    async def leaderboard(self, kind: str, limit: int) -> list[tuple[str, int]] | None:
        from api.marketdata.hot import HotSet

        ranked = await HotSet(self.redis).leaderboard(kind, limit)
        return None if ranked is None else [(str(u), s) for u, s in ranked]


class DatabaseMarket:
    """The same figures recomputed from PostgreSQL (``api/marketdata/fallback.py``)."""

    def __init__(self, session: Any) -> None:
        self.session = session

    async def price(self, card_id: str) -> dict[str, Any] | None:
        from api.marketdata import fallback

        return await fallback.card_price(self.session, uuid.UUID(card_id))

    async def stats(self, set_name: str | None, rarity: str | None) -> dict[str, Any] | None:
        from api.marketdata import fallback

        return await fallback.market_stats(self.session, set_name, rarity)

    async def leaderboard(self, kind: str, limit: int) -> list[tuple[str, int]] | None:
        from api.marketdata import fallback

        return [(str(u), s) for u, s in await fallback.leaderboard(self.session, kind, limit)]


async def market_rows(settings: Settings, settle_s: float) -> list[Row]:
    """Every card's price, the stats of the market, each set and rarity, both leaderboards."""
    from redis.asyncio import Redis
    from redis.exceptions import RedisError
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    engine = create_async_engine(settings.sqlalchemy_url, pool_size=1)
    redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=3)
    try:
        try:
            await redis.ping()
        except RedisError as exc:
            raise Unreachable("redis", str(exc)) from None
        async with AsyncSession(engine) as session:
            try:
                cards = [str(r[0]) for r in await session.execute(
                    text("SELECT id FROM cards ORDER BY id"))]
                sets = (await session.execute(
                    text("SELECT DISTINCT set_name FROM cards ORDER BY 1"))).scalars().all()
                rarities = (await session.execute(
                    text("SELECT DISTINCT rarity FROM cards ORDER BY 1"))).scalars().all()
            except (DBAPIError, OSError) as exc:
                raise Unreachable("postgres", str(exc).splitlines()[0]) from None
            scopes: list[market.Scope] = [(None, None), *((s, None) for s in sets),
                                          *((None, r) for r in rarities)]
            try:
                return await market.compare(HotMarket(session, redis), DatabaseMarket(session),
                                            cards, scopes, settle_s)
            except RedisError as exc:
                raise Unreachable("redis", str(exc)) from None
    finally:
        await redis.aclose()
        await engine.dispose()


def market_runner(settings: Settings, settle_s: float) -> Callable[[], list[Row]]:
    return lambda: asyncio.run(market_rows(settings, settle_s))


async def reconcile_chain(settings: Settings) -> Any:
    """One pass of the platform's reconciler with its own engine and RPC client."""
    from api.nfts.reconcile import reconcile_once

    return await reconcile_once(settings)


def report_metadata(report: Report) -> dict[str, Any]:
    """The report as Dagster metadata: a markdown table and the machine-readable JSON."""
    lines = ["| store | what | expected | found | verdict |", "| --- | --- | --- | --- | --- |"]
    for r in report.rows:
        cells = [r.store, r.what, r.expected, r.found, r.verdict]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return {
        "agree": report.ok,
        "comparisons": len(report.rows),
        "failures": MetadataValue.text(", ".join(f"{r.store} {r.what}" for r in report.failures)
                                       or "none"),
        "seconds": round(report.seconds, 3),
        "report": MetadataValue.md("\n".join(lines)),
        "json": MetadataValue.json(report.as_dict()),
    }


@asset(key=ASSET_KEY, deps=SILVER_KEYS, group_name="consistency", kinds={"python"},
       check_specs=[AssetCheckSpec(CHECK, asset=ASSET_KEY,
                                   description="PostgreSQL, the lake, Redis and the chain agree")],
       description="PostgreSQL against the lake (rows and money per silver table), CDC "
                   "completeness (every committed row in bronze), Redis (card documents, "
                   "prices, leaderboards) and the chain (minted NFT owners): `ece check`.")
def consistency(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    settings = lake.settings()
    report = runner.run(runner.comparisons(
        settings, market=market_runner(settings, runner.SETTLE_S),
        chain=lambda: chain.compare(lambda: asyncio.run(reconcile_chain(settings)))),
        progress=context.log.info)
    metadata = report_metadata(report)
    for r in report.failures:
        context.log.warning(f"{r.verdict}: {r.store} {r.what}: expected {r.expected}, "
                            f"found {r.found}. {r.detail}")
    return MaterializeResult(metadata=metadata, check_results=[AssetCheckResult(
        check_name=CHECK, passed=report.ok, severity=AssetCheckSeverity.ERROR,
        metadata={"failures": metadata["failures"], "comparisons": len(report.rows)})])


@op(description="Check every minted NFT against the chain (api/nfts/reconcile.py); "
                "verdicts go to ece.chain.reconciliation.")
def reconcile_nfts(context: OpExecutionContext, lake: LakeResource) -> Output[dict[str, Any]]:
    summary = asyncio.run(reconcile_chain(lake.settings()))
    figures = {"checked": summary.checked, "ok": summary.ok, "mismatch": summary.mismatch,
               "missing": summary.missing, "in_flight": summary.in_flight,
               "published": summary.published, "seconds": round(summary.seconds, 3)}
    verdict = chain.row(summary)
    metadata: dict[str, Any] = {**figures, "verdict": verdict.verdict,
                                "disagreements": MetadataValue.text(verdict.detail or "none")}
    if not summary.clean:
        raise Failure(description=f"{summary.mismatch} mismatch, {summary.missing} missing: "
                                  f"{verdict.detail}", metadata=metadata)
    context.log.info(f"chain reconciled: {verdict.found}")
    return Output(figures, metadata=metadata)


@job(description="Reconcile every minted NFT with the chain (hourly; a mismatch fails it).")
def chain_reconciliation() -> None:
    reconcile_nfts()


hourly_chain_reconciliation = ScheduleDefinition(
    name="hourly_chain_reconciliation", job=chain_reconciliation, cron_schedule=HOURLY,
    execution_timezone="UTC", default_status=DefaultScheduleStatus.RUNNING,
    description="Every hour: every minted NFT's owner on chain against PostgreSQL.")

CONSISTENCY_ASSETS: list[AssetsDefinition] = [consistency]
CONSISTENCY_SCHEDULES: list[ScheduleDefinition] = [hourly_chain_reconciliation]
CONSISTENCY_JOBS: list[JobDefinition] = [chain_reconciliation]
