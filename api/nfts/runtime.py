"""Plumbing shared by the two NFT workers (mint saga, chain transfers).

* :class:`ChangeFeed`: a confluent-kafka consumer of CDC topics, in a consumer
  group keyed by the broker epoch (``ops.stack.broker.cluster_id``) so a fresh
  local broker never inherits offsets of a vanished one. Events only *wake* the
  workers; Postgres is read again for every decision, so a missed, duplicated or
  reordered event cannot cause a wrong action, and a periodic sweep of the
  database catches whatever the feed missed.
* :class:`Scheduler`: at most one job per key (NFT or card) in this process,
  bounded concurrency, and a re-run when a key is poked while its job runs (so an
  event that arrives mid-job is never lost).
* :func:`advisory_lock`: one job per key across processes (a session-level
  Postgres advisory lock, released by the server if the worker dies).
* :class:`RecordingClient`: an ``AsyncClient`` that hands each transaction's
  signature to a hook *before* the transaction is sent, so the database knows
  the signature even if the worker is killed right after the send.
* :func:`crash_point`: the documented test hook (``ECE_TEST_CRASH_AT``) that
  SIGKILLs the worker at a named step to prove crash recovery.
* :class:`DeadLetters`: failures to ``ece.dlq``, keyed by the source topic, in
  the same format as the stream jobs' DLQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextvars import ContextVar
from functools import partial
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from solana.rpc.async_api import AsyncClient
from solana.rpc.models import TxOpts
from solders.rpc.responses import SendTransactionResp
from solders.transaction import VersionedTransaction
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from ece.contracts.topics import DLQ
from ece.settings import Settings
from streaming.jobs.dlq import dlq_value

log = structlog.get_logger("api.nfts.runtime")

CRASH_ENV = "ECE_TEST_CRASH_AT"
EPOCH_CHECK_SECONDS = 30.0


# --- test hook ------------------------------------------------------------------------


def crash_point(step: str, key: object = None) -> None:
    """TEST HOOK: ``ECE_TEST_CRASH_AT=<step>[:<id>]`` makes the worker SIGKILL itself here.

    Steps: ``after_upload`` (metadata posted to Arweave, saga not yet moved on),
    ``after_mint_send`` (mint confirmed on chain, not yet recorded as minted),
    ``after_transfer_send`` (transfer confirmed, not yet recorded). With ``:<id>``
    only the NFT (or card, for transfers) with that id triggers it. A real
    ``kill -9`` at the worst moment, used by tests/nfts to prove that a restarted
    worker uploads once, mints once and transfers once. Ignored when ``ECE_ENV=prod``.
    """
    wanted = os.environ.get(CRASH_ENV)
    if not wanted or os.environ.get("ECE_ENV") == "prod":
        return
    name, _, only = wanted.partition(":")
    if name == step and (not only or only == str(key)):
        log.warning("test_crash_point", step=step, key=str(key), pid=os.getpid())
        os.kill(os.getpid(), signal.SIGKILL)


# --- database -------------------------------------------------------------------------


def make_sessions(
    settings: Settings, pool_size: int
) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    """A worker's own engine, sized for its lock connections plus short transactions."""
    engine = create_async_engine(
        settings.sqlalchemy_url, pool_size=pool_size, max_overflow=pool_size // 2,
        pool_pre_ping=True,
    )
    return engine, async_sessionmaker(engine, expire_on_commit=False)


def lock_key(namespace: int, key: uuid.UUID) -> tuple[int, int]:
    """``pg_advisory_lock(int4, int4)`` arguments: a namespace per worker, 32 bits of the id."""
    return namespace, int.from_bytes(key.bytes[:4], "big", signed=True)


@contextlib.asynccontextmanager
async def advisory_lock(engine: AsyncEngine, namespace: int, key: uuid.UUID) -> AsyncIterator[bool]:
    """Yield True if this process now owns ``key`` (else another worker does: skip it)."""
    a, b = lock_key(namespace, key)
    async with engine.connect() as conn:
        got = bool(await conn.scalar(text("SELECT pg_try_advisory_lock(:a, :b)"), {"a": a, "b": b}))
        await conn.commit()
        try:
            yield got
        finally:
            if got:
                try:
                    await conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), {"a": a, "b": b})
                    await conn.commit()
                except BaseException as exc:
                    # Cancelled or the connection broke: never hand a connection that may
                    # still hold the lock back to the pool; closing it releases the lock.
                    with contextlib.suppress(Exception):
                        await conn.invalidate()
                    if not isinstance(exc, Exception):
                        raise


# --- chain client that records signatures before sending --------------------------------

SignatureHook = Callable[[str], Awaitable[None]]
_before_send: ContextVar[SignatureHook | None] = ContextVar("ece_before_send", default=None)


class RecordingClient(AsyncClient):
    """``AsyncClient`` whose ``send_raw_transaction`` first awaits the current hook.

    The hook (set per task with :func:`recording`) stores the signature in the
    database; only then do the bytes leave the process. Re-signs after an expired
    blockhash call it again with the new signature.
    """

    async def send_raw_transaction(
        self, txn: bytes, opts: TxOpts | None = None
    ) -> SendTransactionResp:
        hook = _before_send.get()
        if hook is not None:
            await hook(str(VersionedTransaction.from_bytes(bytes(txn)).signatures[0]))
        return await super().send_raw_transaction(txn, opts)


@contextlib.contextmanager
def recording(hook: SignatureHook) -> Iterator[None]:
    token = _before_send.set(hook)
    try:
        yield
    finally:
        _before_send.reset(token)


# --- scheduling -----------------------------------------------------------------------


class Scheduler:
    """One job per key at a time, ``concurrency`` jobs at most, re-run on a mid-job poke."""

    def __init__(self, job: Callable[[uuid.UUID], Awaitable[None]], concurrency: int) -> None:
        self._job = job
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._again: set[uuid.UUID] = set()

    @property
    def busy(self) -> int:
        return len(self._tasks)

    def submit(self, key: uuid.UUID) -> None:
        if key in self._tasks:
            self._again.add(key)
            return
        self._tasks[key] = asyncio.create_task(self._run(key), name=f"job-{key}")

    async def _run(self, key: uuid.UUID) -> None:
        try:
            while True:
                self._again.discard(key)
                async with self._slots:
                    try:
                        await self._job(key)
                    except Exception:  # noqa: BLE001 - a job's bug must not stop the others
                        log.exception("job_crashed", key=str(key))
                if key not in self._again:
                    return
        finally:
            self._tasks.pop(key, None)

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109 - bounded shutdown wait
        """Let running jobs finish (each step is resumable, so cancelling is safe too)."""
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def sweep_loop(
    stop: asyncio.Event,
    name: str,
    interval: float,
    find: Callable[[], Awaitable[list[uuid.UUID]]],
    scheduler: Scheduler,
) -> None:
    """Every ``interval`` s, submit whatever the database says is unfinished."""
    failures = 0
    while not stop.is_set():
        try:
            for key in await find():
                scheduler.submit(key)
            failures = 0
        except Exception as exc:  # noqa: BLE001 - Postgres restarting: back off, keep going
            failures += 1
            log.warning("sweep_failed", worker=name, error=str(exc), failures=failures)
        await sleep_or_stop(stop, min(interval * 2**failures, 30.0) * (1 + random.random() / 10))


async def feed_and_sweep(
    settings: Settings,
    stop: asyncio.Event,
    *,
    name: str,
    topics: list[str],
    on_event: Callable[[Scheduler, str, dict[str, Any]], None],
    job: Callable[[uuid.UUID], Awaitable[None]],
    unfinished: Callable[[], Awaitable[list[uuid.UUID]]],
    dead_letters: DeadLetters,
    concurrency: int,
    sweep_seconds: float,
) -> None:
    """The loop both NFT workers share, until ``stop``: the change feed wakes jobs at
    once, the sweep re-submits whatever Postgres says is unfinished (so a missed event
    only delays work), and in-flight jobs get a short grace period on the way out."""
    scheduler = Scheduler(job, concurrency)
    feed = ChangeFeed(settings, name, topics, partial(on_event, scheduler), dead_letters)
    tasks = [
        asyncio.create_task(feed.run(stop), name=f"{name}-feed"),
        asyncio.create_task(sweep_loop(stop, name, sweep_seconds, unfinished, scheduler),
                            name=f"{name}-sweep"),
    ]
    await stop.wait()
    await asyncio.gather(*tasks, return_exceptions=True)
    await scheduler.drain(10.0)


# --- Kafka ----------------------------------------------------------------------------


def broker_epoch(settings: Settings, timeout: float = 5.0) -> str:
    from ops.stack.broker import cluster_id

    return cluster_id(settings.kafka_bootstrap, timeout)


class ChangeFeed:
    """Consume CDC topics and call ``on_event(topic, value)`` for each change (not tombstones).

    Offsets are committed automatically: an event is only a wake-up call, and the
    sweep recovers anything lost between a poll and its processing.
    """

    def __init__(
        self,
        settings: Settings,
        worker: str,
        topics: list[str],
        on_event: Callable[[str, dict[str, Any]], None],
        dead_letters: DeadLetters | None = None,
    ) -> None:
        self.settings = settings
        self.worker = worker
        self.topics = topics
        self.on_event = on_event
        self.dead_letters = dead_letters
        self.epoch: str | None = None

    def _consumer(self, epoch: str) -> Consumer:
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "group.id": f"ece-{self.worker}-{epoch}",
                "auto.offset.reset": "earliest",  # a new group must see every pending change
                "enable.auto.commit": True,
                "session.timeout.ms": self.settings.kafka_session_timeout_ms,
                "heartbeat.interval.ms": 1000,
                "topic.metadata.refresh.interval.ms": 5000,  # topics CDC creates later
                "fetch.wait.max.ms": 50,
                "client.id": f"ece-{self.worker}-{os.getpid()}",
            }
        )
        consumer.subscribe(self.topics)
        return consumer

    async def run(self, stop: asyncio.Event) -> None:
        consumer: Consumer | None = None
        checked = 0.0
        try:
            while not stop.is_set():
                if consumer is None or time.monotonic() - checked > EPOCH_CHECK_SECONDS:
                    try:
                        epoch = await asyncio.to_thread(broker_epoch, self.settings, 5.0)
                    except Exception as exc:  # noqa: BLE001 - broker down: the sweep still runs
                        log.warning("feed_broker_unreachable", worker=self.worker, error=str(exc))
                        await sleep_or_stop(stop, 2.0)
                        continue
                    checked = time.monotonic()
                    if epoch != self.epoch or consumer is None:
                        if consumer is not None:
                            await asyncio.to_thread(consumer.close)
                        log.info("feed_subscribed", worker=self.worker, epoch=epoch,
                                 topics=self.topics)
                        consumer, self.epoch = self._consumer(epoch), epoch
                messages = await asyncio.to_thread(_next_batch, consumer)
                for message in messages:
                    self._handle(message)
        finally:
            if consumer is not None:
                await asyncio.to_thread(consumer.close)

    def _handle(self, message: Any) -> None:
        if message.error() is not None:
            log.debug("feed_error", worker=self.worker, error=str(message.error()))
            return
        raw = message.value()
        if raw is None:  # tombstone after a delete
            return
        try:
            value = json.loads(raw)
            if not isinstance(value, dict):
                raise ValueError("not a Debezium envelope")
            self.on_event(message.topic(), value)
        except Exception as exc:  # noqa: BLE001 - never drop silently: dead-letter it
            log.warning("feed_bad_event", worker=self.worker, topic=message.topic(), error=str(exc))
            if self.dead_letters is not None:
                self.dead_letters.publish(
                    message.topic(), self.worker, raw.decode(errors="replace"), str(exc)
                )


def _next_batch(consumer: Consumer, wait: float = 0.5, most: int = 500) -> list[Any]:
    """The first message as soon as it arrives, plus whatever is already fetched.

    ``consume(n, timeout)`` alone would wait for ``n`` messages or the whole timeout,
    delaying every wake-up by up to ``timeout`` when traffic is light.
    """
    first = consumer.poll(wait)
    if first is None:
        return []
    return [first, *consumer.consume(most - 1, 0)]


def parse_uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


class DeadLetters:
    """Producer for ``ece.dlq``: ``key = source topic``, value as ``streaming.jobs.dlq``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: Producer | None = None

    def _create_topic(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap})
        futures = admin.create_topics([NewTopic(DLQ, num_partitions=1, replication_factor=-1)])
        for future in futures.values():
            try:
                future.result(10)
            except KafkaException as exc:
                message = str(exc)
                if "already exist" not in message.lower() and "TOPIC_ALREADY" not in message:
                    raise

    async def start(self) -> None:
        """Create ``ece.dlq`` if missing (best effort: a broker that is down gets it later)."""
        try:
            await asyncio.to_thread(self._create_topic)
        except Exception as exc:  # noqa: BLE001 - the worker must start without the broker
            log.warning("dlq_topic_not_created", error=str(exc))

    def _ensure(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(
                {
                    "bootstrap.servers": self.settings.kafka_bootstrap,
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 5,
                    "message.timeout.ms": 60_000,
                }
            )
        return self._producer

    def publish(self, source_topic: str, pipeline: str, payload: str | None, error: str) -> None:
        """Queue one dead letter; delivery failures are logged loudly (the DB keeps the error)."""

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                log.error("dlq_delivery_failed", source_topic=source_topic, error=str(err))

        try:
            producer = self._ensure()
            producer.produce(
                DLQ,
                key=source_topic.encode(),
                value=dlq_value(source_topic, pipeline, payload, error).encode(),
                on_delivery=delivered,
            )
            producer.poll(0)
        except Exception as exc:  # noqa: BLE001 - the failure itself is already in Postgres
            log.error("dlq_publish_failed", source_topic=source_topic, error=str(exc))

    async def flush(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        if self._producer is not None:
            await asyncio.to_thread(self._producer.flush, timeout)


# --- error classes: retry later, or give up on this item ---------------------------------


def is_transient(exc: BaseException) -> bool:
    """Worth retrying with backoff: the network, a node, a gateway or the database is down.

    Everything that says "these inputs can never work" (a failed transaction, a
    rejected upload, a bad request) is permanent; unknown errors are decided by the
    caller (retried a few times, then treated as permanent).
    """
    import httpx
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    from api.integrations.arweave import GatewayUnavailable, InsufficientFunds
    from api.integrations.solana import ChainUnavailable, TransactionExpired
    from api.nfts.platform_keys import PlatformKeyUnfunded

    if isinstance(exc, ChainUnavailable | TransactionExpired | GatewayUnavailable):
        return True
    if isinstance(exc, InsufficientFunds | PlatformKeyUnfunded | PayerShort):
        return True
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OSError | TimeoutError | httpx.TransportError)


class PayerShort(RuntimeError):
    """The fee payer could not pay (balance ran out between checks): top up, then retry."""


def insufficient_funds(exc: BaseException) -> bool:
    """A chain failure caused by the fee payer's balance, not by the NFT itself."""
    text_ = f"{getattr(exc, 'err', '')} {' '.join(getattr(exc, 'logs', []) or [])}"
    return "InsufficientFunds" in text_ or "insufficient lamports" in text_


def is_permanent(exc: BaseException) -> bool:
    """These inputs can never work: record the failure instead of retrying."""
    from api.integrations.arweave import InsufficientFunds, TransactionRejected
    from api.integrations.solana import RpcRejected, TransactionFailed
    from api.nfts.service import PermanentMintError

    if isinstance(exc, InsufficientFunds):
        return False
    if isinstance(exc, TransactionFailed) and insufficient_funds(exc):
        return False
    return isinstance(
        exc, PermanentMintError | TransactionFailed | RpcRejected | TransactionRejected | ValueError
    )


async def with_retries(
    stop: asyncio.Event,
    what: str,
    fn: Callable[[], Awaitable[None]],
    *,
    budget_seconds: float,
    unexpected_attempts: int = 5,
) -> None:
    """Run ``fn`` until it returns, retrying transient failures with exponential backoff
    and jitter (tenacity) for up to ``budget_seconds``; an unknown error is retried
    ``unexpected_attempts`` times. Re-raises the last error when giving up, so the
    caller decides: transient -> leave it to the next sweep, otherwise -> failed.
    """
    from tenacity import AsyncRetrying, RetryCallState, stop_after_delay, wait_exponential_jitter

    def should_retry(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if exc is None or stop.is_set() or is_permanent(exc):
            return False
        return is_transient(exc) or state.attempt_number < unexpected_attempts

    def note(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("retrying", what=what, attempt=state.attempt_number,
                    error=f"{type(exc).__name__}: {exc}"[:500])

    async for attempt in AsyncRetrying(
        retry=should_retry,
        wait=wait_exponential_jitter(multiplier=0.5, max=15.0, jitter=1.0),
        stop=stop_after_delay(budget_seconds),
        sleep=lambda seconds: sleep_or_stop(stop, seconds),
        before_sleep=note,
        reraise=True,
    ):
        with attempt:
            await fn()


class FeePayerGuard:
    """Checks the fee payer's balance at most every ``every`` s (airdrops on a local node)."""

    def __init__(self, payer: Any, rpc_url: str, every: float = 30.0) -> None:
        self.payer = payer
        self.rpc_url = rpc_url
        self.every = every
        self._checked = 0.0

    async def ensure(self, client: AsyncClient) -> None:
        from api.nfts.platform_keys import ensure_fee_payer_funded

        if time.monotonic() - self._checked < self.every:
            return
        await ensure_fee_payer_funded(client, self.payer.pubkey(), self.rpc_url)
        self._checked = time.monotonic()

    def invalidate(self) -> None:
        self._checked = 0.0


def run_main(run: Callable[[Settings, asyncio.Event], Awaitable[None]]) -> None:
    """Run one worker as its own process until SIGINT/SIGTERM (``python -m ...``)."""
    from api.core.logs import configure_logging
    from ece.settings import get_settings

    configure_logging()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per RPC call otherwise

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run(get_settings(), stop)

    asyncio.run(main())
