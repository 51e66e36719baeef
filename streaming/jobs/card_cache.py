"""Pipeline ``card_cache``: keep Redis' card documents in step with ``ece.public.cards``.

The API reads cards from Redis and also writes them (read-through, after commits);
this pipeline is the path that catches every change, including ones the API did
not make (admin SQL, workers, other replicas). Both writers use the contract's
versioned compare-and-set (:mod:`ece.contracts.card_cache`), so a replayed or
late event can never put an older card back: writes are absolute and idempotent,
which is what makes at-least-once delivery safe.

Redis writes are buffered per bucket in Flink state and flushed as one pipeline
every few milliseconds (or every ``MAX_BATCH`` changes): snapshots and bursts are
written at pipeline speed, and because the buffer is checkpointed together with
the Kafka offsets, a crash between buffering and flushing loses nothing.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ece.contracts.card_cache import SET_IF_NEWER_LUA, card_document, floor_key, set_if_newer_args
from ece.contracts.change_event import MalformedEvent, decode_change, malformed_on_shape_errors
from streaming.jobs.runtime import JobContext

NAME = "card_cache"
SOURCE_TABLE = "cards"
BUCKETS = 8  # keying unit for buffers/timers; one card always maps to one bucket (order kept)
FLUSH_MS = 2
MAX_BATCH = 500

# KEYS[1] document key, KEYS[2] version floor key; ARGV[1] deleted row's version or -1.
# The floor is kept (never deleted) and raised past the deleted version, so a replay of
# the row's last update cannot resurrect it. A delete older than the floor is refused.
DELETE_LUA = """
local floor = tonumber(redis.call('GET', KEYS[2]) or '0')
local version = tonumber(ARGV[1])
if version >= 0 and version < floor then return 0 end
redis.call('DEL', KEYS[1])
if version >= 0 and version + 1 > floor then redis.call('SET', KEYS[2], version + 1) end
return 1
"""


@dataclass(frozen=True)
class CacheWrite:
    """One compare-and-set against Redis; ``entry`` None means delete."""

    bucket: int
    doc_key: str
    floor_key: str
    version: int
    entry: str | None


def _bucket(card_id: str) -> int:
    return zlib.crc32(card_id.encode()) % BUCKETS


def _version(row: dict[str, Any], *, required: bool) -> int:
    version = row.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version >= 0:
        return version
    if required:
        raise MalformedEvent(f"row version missing or invalid: {version!r}")
    return -1


@malformed_on_shape_errors
def parse_change(raw: str | None, ttl_seconds: int) -> CacheWrite | None:
    """The cache write a CDC message asks for; None for tombstones.

    Raises :class:`MalformedEvent` for anything that is not a card change.
    """
    change = decode_change(raw)
    if change is None:
        return None
    if change.op != "d":
        after = change.after or {}
        version = _version(after, required=True)
        try:
            document = card_document(after)
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedEvent(f"card row unusable: {type(exc).__name__}: {exc}") from exc
        keys, argv = set_if_newer_args(document, version, ttl_seconds)
        return CacheWrite(_bucket(document["id"]), keys[0], keys[1], version, str(argv[1]))
    before = change.before
    if before is None or before.get("id") in (None, ""):
        raise MalformedEvent("delete without 'before.id'")
    card_id = str(before["id"])
    keys, _ = set_if_newer_args({"id": card_id}, 0, ttl_seconds)
    return CacheWrite(_bucket(card_id), keys[0], floor_key(card_id),
                      _version(before, required=False), None)


def _row_type() -> Any:
    from pyflink.common import Types

    return Types.ROW_NAMED(
        ["bucket", "doc_key", "floor_key", "version", "entry"],
        [Types.INT(), Types.STRING(), Types.STRING(), Types.LONG(), Types.STRING()],
    )


def _dlq_tag() -> Any:
    from pyflink.datastream import OutputTag

    from streaming.jobs.dlq import keyed_type

    return OutputTag("card_cache_dlq", keyed_type())


def build(ctx: JobContext) -> None:
    """source -> parse (bad ones to the DLQ) -> key by bucket -> buffered Redis CAS."""
    from pyflink.common import Row
    from pyflink.datastream import KeyedProcessFunction, ProcessFunction, RuntimeContext
    from pyflink.datastream.state import ListStateDescriptor

    from streaming.jobs.dlq import dlq_row

    dlq_tag = _dlq_tag()
    row_type = _row_type()
    source_topic = ctx.cdc_topic(SOURCE_TABLE)
    ttl = ctx.settings.card_cache_ttl_seconds
    redis_url = ctx.settings.redis_url

    class ParseChanges(ProcessFunction):  # type: ignore[misc]
        def process_element(self, value: str, _ctx: Any) -> Iterator[Any]:
            try:
                write = parse_change(value, ttl)
            except MalformedEvent as exc:
                yield dlq_tag, dlq_row(source_topic, NAME, value, str(exc))
                return
            if write is not None:
                yield Row(write.bucket, write.doc_key, write.floor_key, write.version,
                          write.entry)

    class RedisCacheWriter(KeyedProcessFunction):  # type: ignore[misc]
        """Buffers writes in checkpointed state and flushes them as one Redis pipeline."""

        def open(self, runtime_context: RuntimeContext) -> None:
            import redis

            self.client = redis.Redis.from_url(redis_url, socket_timeout=5,
                                               health_check_interval=30)
            self.set_if_newer = self.client.register_script(SET_IF_NEWER_LUA)
            self.delete = self.client.register_script(DELETE_LUA)
            self.buffer = runtime_context.get_list_state(
                ListStateDescriptor("pending_writes", _row_type()))
            self.counts: dict[int, int] = {}

        def close(self) -> None:
            self.client.close()

        def process_element(self, value: Any, ctx: Any) -> Iterable[Any]:
            self.buffer.add(value)
            key = ctx.get_current_key()
            count = self.counts.get(key, 0) + 1
            if count >= MAX_BATCH:
                self._flush(key)
                return []
            if count == 1:
                now = ctx.timer_service().current_processing_time()
                ctx.timer_service().register_processing_time_timer(now + FLUSH_MS)
            self.counts[key] = count
            return []

        def on_timer(self, timestamp: int, ctx: Any) -> Iterable[Any]:
            self._flush(ctx.get_current_key())
            return []

        def _flush(self, key: int) -> None:
            rows = list(self.buffer.get() or [])
            self.counts.pop(key, None)
            if not rows:
                return
            pipe = self.client.pipeline(transaction=False)
            for row in rows:
                keys = [row[1], row[2]]
                if row[4] is None:
                    self.delete(keys=keys, args=[row[3]], client=pipe)
                else:
                    self.set_if_newer(keys=keys, args=[row[3], row[4], ttl], client=pipe)
            pipe.execute()  # raises on a Redis error: the job restarts from the checkpoint
            self.buffer.clear()

    parsed = ctx.kafka_source(NAME, [source_topic]).process(
        ParseChanges(), output_type=row_type).uid(f"{NAME}-parse").name(f"{NAME}: parse")
    ctx.dlq(parsed.get_side_output(dlq_tag), NAME)
    (parsed.key_by(lambda row: row[0], key_type=_int_type())
     .process(RedisCacheWriter()).uid(f"{NAME}-redis").name(f"{NAME}: redis CAS"))


def _int_type() -> Any:
    from pyflink.common import Types

    return Types.INT()
