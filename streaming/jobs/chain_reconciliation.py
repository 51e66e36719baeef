"""Pipeline ``chain_reconciliation``: re-check an NFT on chain whenever its row or card changes.

``ece chain reconcile`` checks everything on demand; this pipeline keeps the
verdicts current between runs. Triggers (Debezium changes):

- ``ece.public.nfts``: any change of a row in ``minted`` (a new mint, a recorded
  transfer, a touch) -> that mint;
- ``ece.public.cards``: an owner change (sale, trade, auction) -> the card's
  minted NFT, looked up in PostgreSQL (most cards have none).

Keyed by mint address. A trigger arms a short processing-time timer (bursts on
one mint collapse into one check); when it fires, the verdict is computed by the
same code as the CLI (:func:`api.nfts.reconcile.reconcile_mints`: current
database row, current chain state) and ``ok | mismatch | missing`` is written to
``ece.chain.reconciliation``. An ``in_flight`` verdict (the card was just sold
and the token is still on its way) re-arms the timer instead of publishing, so a
transfer that lands shows up as ``ok`` and one that never lands turns into a
``mismatch`` once the grace period is over. When the database or the RPC is
unreachable the check is retried with exponential backoff; timers live in keyed
state, so pending checks survive a restart. Verdicts are at least once (a
replay re-checks and republishes the then-current truth, which is harmless).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ece.contracts.change_event import MalformedEvent, decode_change, malformed_on_shape_errors
from ece.contracts.topics import chain_reconciliation_topic
from ece.retry import backoff_delay
from streaming.jobs.runtime import RELAXED_FETCH_WAIT_MS, JobContext, ensure_topics

log = logging.getLogger(__name__)

NAME = "chain_reconciliation"
SETTLE_MS = 250  # coalesce a burst of changes on one mint into one check
RECHECK_MS = 2_000  # in-flight transfer: look again this soon
RETRY_BASE_MS = 2_000  # database/RPC unreachable: back off from here ...
RETRY_MAX_MS = 300_000  # ... up to five minutes


@dataclass(frozen=True)
class Trigger:
    """What to re-check: a mint directly, or the minted NFT of a card (needs a lookup)."""

    mint: str | None = None
    card_id: str | None = None


@malformed_on_shape_errors
def parse_change(raw: str | None) -> Trigger | None:
    """The re-check a CDC message asks for; None when it asks for none (or is a tombstone)."""
    change = decode_change(raw)
    if change is None:
        return None
    before, after = change.before, change.after
    if change.table == "nfts":
        if after is None or after.get("status") != "minted":
            return None
        mint = after.get("mint_address")
        if not isinstance(mint, str) or not mint:
            raise MalformedEvent("minted NFT without a mint_address")
        return Trigger(mint=mint)
    if change.table == "cards":
        if change.op != "u" or after is None:
            return None
        if before is not None and before.get("owner_id") == after.get("owner_id"):
            return None  # not an ownership change (price, status, image ...)
        card_id = after.get("id")
        if not isinstance(card_id, str) or not card_id:
            raise MalformedEvent("card change without an id")
        return Trigger(card_id=card_id)
    raise MalformedEvent(f"unexpected source table {change.table!r}")


def retry_delay_ms(attempts: int) -> int:
    """The platform's backoff (:mod:`ece.retry`), without jitter: timers are per key."""
    return round(1000 * backoff_delay(attempts, base=RETRY_BASE_MS / 1000,
                                      cap=RETRY_MAX_MS / 1000, jitter=0.0))


def _dlq_tag() -> Any:
    from pyflink.datastream import OutputTag

    from streaming.jobs.dlq import keyed_type

    return OutputTag(f"{NAME}_dlq", keyed_type())


def build(ctx: JobContext) -> None:
    """source -> parse + resolve card -> mint (bad ones to the DLQ) -> key by mint -> check."""
    from pyflink.common import Row, Types
    from pyflink.datastream import KeyedProcessFunction, ProcessFunction, RuntimeContext
    from pyflink.datastream.state import ValueStateDescriptor

    from streaming.jobs.dlq import dlq_row, keyed_type

    verdicts_topic = chain_reconciliation_topic(ctx.settings.topic_prefix)
    ensure_topics(ctx.settings, [verdicts_topic])
    dlq_tag = _dlq_tag()
    database_url = ctx.settings.database_url
    sqlalchemy_url = ctx.settings.sqlalchemy_url
    rpc_url = ctx.settings.solana_rpc_url

    class ResolveMints(ProcessFunction):  # type: ignore[misc]
        """CDC message of ``topic`` -> mint address to check (cards resolved via PostgreSQL).

        Malformed ``nfts`` messages go to the DLQ. Malformed ``cards`` messages do not:
        the card-cache pipeline, which needs every card change, already reports each
        one there, and one bad message should make one DLQ record, not one per reader.
        """

        def __init__(self, topic: str, report_malformed: bool) -> None:
            super().__init__()
            self.topic = topic
            self.report_malformed = report_malformed

        def open(self, runtime_context: RuntimeContext) -> None:
            self.conn: Any = None

        def close(self) -> None:
            if self.conn is not None:
                self.conn.close()

        def _mint_of_card(self, card_id: str) -> str | None:
            import psycopg

            for attempt in (1, 2):  # one reconnect: the database may have restarted
                try:
                    if self.conn is None or self.conn.closed:
                        self.conn = psycopg.connect(database_url, autocommit=True)
                    row = self.conn.execute(
                        "SELECT mint_address FROM nfts WHERE card_id = %s AND status = 'minted'",
                        (card_id,),
                    ).fetchone()
                    return row[0] if row else None
                except psycopg.OperationalError:
                    self.conn = None
                    if attempt == 2:
                        raise  # the job restarts from its checkpoint and tries again
            return None

        def process_element(self, value: str, _ctx: Any) -> Iterator[Any]:
            try:
                trigger = parse_change(value)
            except MalformedEvent as exc:
                if self.report_malformed:
                    yield dlq_tag, dlq_row(self.topic, NAME, value, str(exc))
                else:
                    log.debug("skipping malformed %s message (card_cache reports it): %s",
                              self.topic, exc)
                return
            if trigger is None:
                return
            mint = trigger.mint or (self._mint_of_card(trigger.card_id or "") or None)
            if mint:
                yield mint

    class CheckMint(KeyedProcessFunction):  # type: ignore[misc]
        """One pending timer per mint; when it fires, judge the mint and publish the verdict."""

        def open(self, runtime_context: RuntimeContext) -> None:
            import asyncio

            from solana.rpc.async_api import AsyncClient
            from sqlalchemy.ext.asyncio import create_async_engine

            self.loop = asyncio.new_event_loop()
            self.engine = create_async_engine(sqlalchemy_url, pool_size=1, max_overflow=1,
                                              pool_pre_ping=True)
            self.client = AsyncClient(rpc_url, timeout=10)
            self.due = runtime_context.get_state(ValueStateDescriptor("due", Types.LONG()))
            self.attempts = runtime_context.get_state(
                ValueStateDescriptor("attempts", Types.INT()))
            self.mismatches: Any = None
            try:  # Flink's own metric (REST API / UI), beside the Prometheus counter
                self.mismatches = runtime_context.get_metrics_group().counter(
                    "chain_reconciliation_mismatches")
            except Exception:  # noqa: BLE001 - metrics are optional in some execution modes
                log.info("flink metrics unavailable; Prometheus counter only")

        def close(self) -> None:
            async def shutdown() -> None:
                await self.client.close()
                await self.engine.dispose()

            self.loop.run_until_complete(shutdown())
            self.loop.close()

        def _arm(self, ctx: Any, delay_ms: int) -> None:
            at = ctx.timer_service().current_processing_time() + delay_ms
            ctx.timer_service().register_processing_time_timer(at)
            self.due.update(at)

        def process_element(self, value: str, ctx: Any) -> Iterator[Any]:
            due = self.due.value()
            now = ctx.timer_service().current_processing_time()
            # A pending check already covers this change (it reads the state of its own
            # time); a "pending" one far in the past lost its timer somehow: re-arm.
            if due is None or due < now - RETRY_MAX_MS:
                self._arm(ctx, SETTLE_MS)
            return iter(())

        async def _judge(self, mint: str) -> list[Any]:
            from api.nfts.reconcile import reconcile_mints

            async with self.engine.connect() as conn:
                return await reconcile_mints(conn, self.client, [mint])

        def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
            from api.nfts.reconcile import IN_FLIGHT, MISMATCH, MISSING

            if self.due.value() != timestamp:
                return  # superseded (restored from a checkpoint with another schedule)
            self.due.clear()
            mint = ctx.get_current_key()
            try:
                results = self.loop.run_until_complete(self._judge(mint))
            except Exception as exc:  # noqa: BLE001 - database/RPC down: retry, never crash
                attempts = (self.attempts.value() or 0) + 1
                self.attempts.update(attempts)
                log.warning("reconcile %s failed (attempt %d): %s", mint, attempts, exc)
                self._arm(ctx, retry_delay_ms(attempts))
                return
            self.attempts.clear()
            for result in results:
                if result.status == IN_FLIGHT:
                    self._arm(ctx, RECHECK_MS)
                    continue
                if result.status in (MISMATCH, MISSING) and self.mismatches is not None:
                    self.mismatches.inc()
                yield Row(k=result.mint_address, v=result.value())

    # One source per topic (own group and uid): the value-only source does not say which
    # topic a record came from, and the DLQ record must name it.
    resolved = []
    for table in ("nfts", "cards"):
        topic = ctx.cdc_topic(table)
        resolved.append(
            ctx.kafka_source(f"{NAME}_{table}", [topic], fetch_wait_ms=RELAXED_FETCH_WAIT_MS)
            .process(ResolveMints(topic, report_malformed=table == "nfts"),
                     output_type=Types.STRING())
            .uid(f"{NAME}-resolve-{table}").name(f"{NAME}: {table} -> mints"))
    ctx.dlq(resolved[0].get_side_output(dlq_tag), NAME)
    mints = resolved[0].union(resolved[1])
    verdicts = (mints.key_by(lambda mint: mint, key_type=Types.STRING())
                .process(CheckMint(), output_type=keyed_type())
                .uid(f"{NAME}-check").name(f"{NAME}: check on chain"))
    ctx.keyed_sink(verdicts, verdicts_topic, NAME)

