"""Land CDC topics into ``ece.bronze.<table>`` exactly once.

The loop per topic: read the next offsets from the lake, ``assign`` the consumer
there (no consumer group: a group join costs seconds on the local broker and its
offsets would commit apart from the data), fetch a bounded batch, then in ONE
DuckLake transaction re-check the offsets, add any new columns, insert the rows
and write the new offsets. A crash before COMMIT leaves neither rows nor
progress; a lander that lost a race to a concurrent one fails its commit, re-reads
the offsets and goes on from there. An invalid message is produced to ``ece.dlq``
(:mod:`warehouse.bronze.dead_letters`) and flushed before the transaction that
moves the offsets past it commits.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from ece.contracts.topics import CAPTURED_TABLES, EXCLUDED_COLUMNS, cdc_topic
from ece.kafka import epoch_of
from ece.retry import backoff_delay, retry_call
from warehouse.bronze import offsets
from warehouse.bronze.dead_letters import DeadLetters
from warehouse.bronze.envelope import META_COLUMNS, ChangeRow, InvalidMessage, parse
from warehouse.lake import is_conflict, table_columns, table_exists

Progress = Callable[[str], None]
# Called with (topic, rows) just before COMMIT; tests raise from it to simulate a crash.
BeforeCommit = Callable[[str, int], None]

_ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "TIMESTAMP WITH TIME ZONE": pa.timestamp("us", tz="UTC"),
    "DATE": pa.date32(),
}


NO_TOPIC = "topic does not exist yet"


class ConcurrentLanding(RuntimeError):
    """Another lander moved the offsets since we read them: our batch is void."""


@dataclass(frozen=True)
class LandingConfig:
    """Knobs chosen per environment (orchestration.resources)."""

    bootstrap: str
    batch_size: int = 5000
    max_messages_per_topic: int = 200_000
    poll_timeout_s: float = 1.0
    # How long the first fetch after assign may take when the watermarks say events are
    # waiting: a busy broker can take longer than one poll, and an empty first poll
    # must not pass for "drained" (the refresh would land nothing and say it was done).
    first_fetch_s: float = 15.0
    # Every commit replaces rows of the shared offsets table, so two landers of *different*
    # topics (the sensor and `ece warehouse refresh`) conflict too; with backoff (<= 1 s
    # each) 20 tries ride out a concurrent landing of every topic, then it fails loudly.
    max_conflict_retries: int = 20
    prefix: str = "ece"
    extra_consumer_config: dict[str, Any] = field(default_factory=dict)


@dataclass
class TopicReport:
    """What one landing run did for one topic (becomes asset metadata)."""

    table: str
    topic: str
    epoch: str = ""
    landed: int = 0
    tombstones: int = 0
    invalid: int = 0
    batches: int = 0
    conflicts: int = 0
    skipped: str = ""
    positions: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0


def _consumer(config: LandingConfig) -> Consumer:
    return Consumer({
        "bootstrap.servers": config.bootstrap,
        "group.id": "ece-warehouse-bronze",  # required by librdkafka; never joined
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 50,
        **config.extra_consumer_config,
    })


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _arrow_batch(rows: list[tuple[ChangeRow, Message]], epoch: str,
                 row_columns: list[str]) -> pa.Table:
    """Column-wise arrow table: one VARCHAR per source column plus typed metadata."""
    now = datetime.now(UTC)
    data: dict[str, list[Any]] = {c: [] for c in row_columns}
    meta: dict[str, list[Any]] = {c: [] for c in META_COLUMNS}
    for change, msg in rows:
        for c in row_columns:
            data[c].append(change.columns.get(c))
        meta["op"].append(change.op)
        meta["lsn"].append(change.lsn)
        meta["tx_id"].append(change.tx_id)
        meta["ts_ms"].append(change.ts_ms)
        meta["_topic"].append(msg.topic())
        meta["_partition"].append(msg.partition())
        meta["_offset"].append(msg.offset())
        meta["_epoch"].append(epoch)
        meta["_ingested_at"].append(now)
        meta["_day"].append(change.day)
    arrays = {c: pa.array(v, pa.string()) for c, v in data.items()}
    arrays.update({c: pa.array(meta[c], _ARROW_TYPES[t]) for c, t in META_COLUMNS.items()})
    return pa.table(arrays)


def _ensure_columns(con: duckdb.DuckDBPyConnection, table: str, row_columns: list[str]) -> None:
    """Create the table on its first batch, add columns the source gained since."""
    qualified = f"ece.bronze.{_ident(table)}"
    if not table_exists(con, "bronze", table):
        cols = [f"{_ident(c)} VARCHAR" for c in row_columns]
        cols += [f"{_ident(c)} {t}" for c, t in META_COLUMNS.items()]
        con.execute(f"CREATE TABLE {qualified} ({', '.join(cols)})")
        con.execute(f"ALTER TABLE {qualified} SET PARTITIONED BY (_day)")
        return
    existing = set(table_columns(con, "bronze", table))
    for c in row_columns:
        if c not in existing:
            con.execute(f"ALTER TABLE {qualified} ADD COLUMN {_ident(c)} VARCHAR")


def _commit_batch(con: duckdb.DuckDBPyConnection, table: str, topic: str, epoch: str,
                  expected: dict[int, int], new_positions: dict[int, int],
                  rows: list[tuple[ChangeRow, Message]], drained: bool,
                  before_commit: BeforeCommit | None) -> None:
    """Rows and offsets in one transaction; anything unexpected rolls both back."""
    con.execute("BEGIN TRANSACTION")
    try:
        current = offsets.read(con, epoch, topic).positions
        for partition in new_positions:
            if current.get(partition, 0) != expected.get(partition, 0):
                raise ConcurrentLanding(
                    f"{topic}[{partition}] is at {current.get(partition, 0)}, "
                    f"expected {expected.get(partition, 0)}")
        if rows:
            row_columns = sorted({c for change, _ in rows for c in change.columns})
            _ensure_columns(con, table, row_columns)
            batch = _arrow_batch(rows, epoch, row_columns)
            con.register("_bronze_batch", batch)
            try:
                con.execute(f"INSERT INTO ece.bronze.{_ident(table)} BY NAME "
                            "SELECT * FROM _bronze_batch")
            finally:
                con.unregister("_bronze_batch")
        offsets.write(con, epoch, topic, new_positions, drained)
        if before_commit is not None:
            before_commit(topic, len(rows))
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):  # a failed COMMIT already ended it
            con.execute("ROLLBACK")
        raise


def _is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, ConcurrentLanding) or is_conflict(exc)


def _behind(consumer: Consumer, topic: str, partitions: list[int], state: offsets.Progress,
            progress: Progress) -> int:
    """How many events (at least) wait on this topic; 0 proves there are none.

    Skips the idle poll (``poll_timeout_s`` per topic) when nothing is new. The
    local broker under-reports the high watermark (last batch's base offset + 1),
    but a new batch always starts at or after our position, so ``high <= position``
    with a drained last landing still proves there is nothing new (see offsets).
    A low watermark past our position means the broker's retention deleted events
    before we landed them: said loudly.
    """
    behind = 0
    positions = state.positions
    for p in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
        if low > positions.get(p, 0):
            progress(f"{topic}[{p}]: WARNING offsets {positions.get(p, 0)}..{low - 1} "
                     "were deleted by retention before landing")
        behind += max(0, high - positions.get(p, 0))
    if not behind and not state.drained:
        return 1  # a capped or crashed run stopped inside the last batch
    return behind


def land_topic(con: duckdb.DuckDBPyConnection, consumer: Consumer, table: str,
               config: LandingConfig, progress: Progress,
               before_commit: BeforeCommit | None = None,
               dead_letters: DeadLetters | None = None) -> TopicReport:
    """Land everything new on one table's topic, in bounded batches."""
    letters = dead_letters or DeadLetters(config.bootstrap, config.prefix)
    topic = cdc_topic(table, config.prefix)
    report = TopicReport(table=table, topic=topic)
    started = time.monotonic()
    meta = consumer.list_topics(topic, timeout=10)
    report.epoch = epoch = epoch_of(meta)
    topic_meta = meta.topics.get(topic)
    if topic_meta is None or topic_meta.error is not None or not topic_meta.partitions:
        report.skipped = NO_TOPIC
        return report
    partitions = sorted(topic_meta.partitions)
    exclude = frozenset(EXCLUDED_COLUMNS.get(table, ()))
    retry_call(lambda: offsets.ensure_rows(con, epoch, topic, partitions),
               what=f"offset rows of {topic}", should_retry=lambda exc, _n: is_conflict(exc),
               attempts=8, base=0.02, cap=0.5, jitter=0.6)
    state = offsets.read(con, epoch, topic)
    positions = state.positions
    if not _behind(consumer, topic, partitions, state, progress):
        report.positions = positions
        report.seconds = time.monotonic() - started
        return report
    lake_drained = state.drained
    consumer.assign([TopicPartition(topic, p, positions.get(p, 0)) for p in partitions])
    # A drained last landing plus a nonzero count means the watermarks prove events wait.
    first_fetch_until = time.monotonic() + config.first_fetch_s if lake_drained else 0.0
    try:
        while report.landed + report.tombstones + report.invalid < config.max_messages_per_topic:
            budget = config.max_messages_per_topic - report.landed - report.tombstones \
                - report.invalid
            wanted = min(config.batch_size, budget)
            msgs = consumer.consume(wanted, config.poll_timeout_s)
            if not msgs and not report.batches and time.monotonic() < first_fetch_until:
                continue  # events wait (the watermarks said so): the first fetch is slow
            # Fewer than asked = the poll timed out = every partition read to its end.
            drained = len(msgs) < wanted
            if not msgs:
                if not lake_drained:  # say so in the lake, or the sensor would keep asking
                    try:
                        _commit_batch(con, table, topic, epoch, positions, dict(positions),
                                      [], True, None)
                    except Exception as exc:
                        if not _is_conflict(exc):
                            raise
                        # another lander moved on meanwhile: its own commit tells the truth
                break
            rows: list[tuple[ChangeRow, Message]] = []
            new_positions: dict[int, int] = {}
            tombstones = invalid = 0
            for msg in msgs:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(f"{topic}: {err}")
                new_positions[int(msg.partition() or 0)] = int(msg.offset() or 0) + 1
                value = msg.value()
                if value is None:  # the tombstone after a delete: nothing to land
                    tombstones += 1
                    continue
                try:
                    rows.append((parse(msg.key(), value, exclude), msg))
                except InvalidMessage as exc:
                    invalid += 1
                    letters.send(msg, str(exc))
                    progress(f"{topic}[{msg.partition()}]@{msg.offset()}: to "
                             f"{letters.topic}, {exc}")
            if not new_positions:
                continue
            if invalid:  # at least once: the letters are acknowledged before the offsets move
                letters.flush()
            if drained:  # mark every partition, also those without messages in this batch
                new_positions = {**positions, **new_positions}
            try:
                _commit_batch(con, table, topic, epoch, positions, new_positions, rows,
                              drained, before_commit)
            except Exception as exc:
                if not _is_conflict(exc) or report.conflicts >= config.max_conflict_retries:
                    raise
                report.conflicts += 1
                progress(f"{topic}: concurrent landing detected ({exc}); resuming from the lake")
                # jittered: two landers that collided must not retry in lockstep
                time.sleep(backoff_delay(report.conflicts, base=0.15, cap=1.0, jitter=0.6))
                positions = offsets.read(con, epoch, topic).positions
                lake_drained = False
                consumer.assign([TopicPartition(topic, p, positions.get(p, 0))
                                 for p in partitions])
                continue
            positions = {**positions, **new_positions}
            lake_drained = drained
            report.landed += len(rows)
            report.tombstones += tombstones
            report.invalid += invalid
            report.batches += 1
            rate = report.landed / max(time.monotonic() - started, 1e-6)
            progress(f"{topic}: +{len(rows)} rows (total {report.landed}, {rate:,.0f}/s), "
                     f"next offsets {dict(sorted(positions.items()))}")
    finally:
        consumer.unassign()
    report.positions = positions
    report.seconds = time.monotonic() - started
    return report


def land(con: duckdb.DuckDBPyConnection, config: LandingConfig,
         tables: Iterable[str] = CAPTURED_TABLES, progress: Progress | None = None,
         before_commit: BeforeCommit | None = None) -> list[TopicReport]:
    """Land every new event of these tables' topics; returns one report per table."""
    say = progress or (lambda _msg: None)
    offsets.ensure_table(con)
    consumer = _consumer(config)
    letters = DeadLetters(config.bootstrap, config.prefix)
    try:
        reports = []
        for table in tables:
            report = land_topic(con, consumer, table, config, say, before_commit, letters)
            if report.skipped and report.skipped != NO_TOPIC:
                say(f"{report.topic}: skipped ({report.skipped})")
            elif report.landed or report.tombstones:
                say(f"{report.topic}: landed {report.landed} rows in {report.batches} "
                    f"batches, {report.seconds:.2f}s")
            reports.append(report)
        return reports
    finally:
        consumer.close()


def pending_topics(con: duckdb.DuckDBPyConnection, config: LandingConfig,
                   tables: Iterable[str] = CAPTURED_TABLES) -> dict[str, int]:
    """topic -> at least how many events wait to be landed (only topics with some).

    Used by the sensor to skip empty runs, with the same proof as the landing's
    own shortcut (see :func:`_behind`): no polling, a metadata call per partition.
    """
    offsets.ensure_table(con)
    consumer = _consumer(config)
    try:
        meta = consumer.list_topics(timeout=10)
        epoch = epoch_of(meta)
        waiting: dict[str, int] = {}
        for table in tables:
            topic = cdc_topic(table, config.prefix)
            topic_meta = meta.topics.get(topic)
            if topic_meta is None or topic_meta.error is not None or not topic_meta.partitions:
                continue
            state = offsets.read(con, epoch, topic)
            behind = _behind(consumer, topic, sorted(topic_meta.partitions), state,
                             lambda _msg: None)
            if behind:
                waiting[topic] = behind
        return waiting
    finally:
        consumer.close()
