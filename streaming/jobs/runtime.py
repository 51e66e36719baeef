"""The shared job context: one environment, Kafka in and out, for every pipeline.

Pipelines never build sources, sinks or environments themselves; they ask the
:class:`JobContext`, so that broker quirks, the epoch-keyed group ids, the
checkpoint/restore policy and the DLQ format are decided in one place.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ece import kafka
from ece.contracts import topics
from ece.settings import Settings
from streaming.jobs import minicluster

log = logging.getLogger(__name__)

# A keyed Kafka record (key and value as UTF-8 text): what every derived-topic sink takes.
KEYED_FIELDS = ["k", "v"]

# How long a source's fetch may wait on the broker for data. The local broker (Tansu)
# answers the Java client's waiting fetch only when the wait runs out, not when data
# arrives (librdkafka's it answers at once), so on this stack the wait is added to the
# latency of every idle-to-busy change, and each idle source costs the broker one fetch
# per wait: 17 sources at 20 ms were most of the broker's 15% idle CPU. Each tier's wait
# is a fifth of its latency goal or less: the card cache (commit -> cache p99 100 ms)
# keeps the short wait; the activity and notification sources (-> activity p99 500 ms,
# -> notification on the socket p99 1 s) a middle one; those whose goal is seconds (a
# sale in the hot set within 5 s, one-minute windows, chain checks) the long one.
LIVE_FETCH_WAIT_MS = 20
ACTIVITY_FETCH_WAIT_MS = 100
RELAXED_FETCH_WAIT_MS = 500


@dataclass
class JobOptions:
    """Knobs of one run (CLI flags); everything else comes from :class:`Settings`."""

    # Every sink is at least once and sends as records come (nothing waits for a
    # checkpoint to become visible), so the interval only bounds how much a restarted job
    # replays into idempotent consumers. Each checkpoint walks every operator, the Python
    # ones included: at 1 s that was 5% of a core on an idle platform (issue 14, P6).
    checkpoint_interval_ms: int = 5000
    restore: bool = True
    partition_discovery_ms: int = 2000
    # Submitted to a session cluster by ``flink run``: the cluster's configuration (ports,
    # slots, memory, parallelism from ``-p``) applies, so only job options are set here.
    on_cluster: bool = False


@dataclass
class JobContext:
    """What a pipeline's ``build(ctx)`` gets: the environment and Kafka helpers."""

    settings: Settings
    epoch: str
    env: Any  # pyflink StreamExecutionEnvironment (untyped library)
    options: JobOptions
    restored_from: Path | None = None
    _t_env: Any = None
    _sinks: dict[str, str] = field(default_factory=dict)
    _statements: Any = None

    # --- Kafka in -------------------------------------------------------

    def group_id(self, pipeline: str) -> str:
        """Per pipeline (two pipelines may read one topic) and per broker epoch.

        A fresh broker (new cluster id) must not inherit offsets of a vanished one; a
        real Kafka cluster keeps its id, so this is stable in production.
        """
        return kafka.epoch_group_id(f"flink-{pipeline}", self.epoch)

    def topic(self, name: str) -> str:
        """``<topic_prefix>.<name>``: a derived topic under this deployment's prefix."""
        return topics.topic(name, self.settings.topic_prefix)

    def cdc_topic(self, table: str) -> str:
        """The CDC topic of ``table`` under this deployment's prefix."""
        return topics.cdc_topic(table, self.settings.topic_prefix)

    def kafka_source(self, pipeline: str, source_topics: list[str],
                     uid: str | None = None,
                     fetch_wait_ms: int = LIVE_FETCH_WAIT_MS) -> Any:
        """A stream of record values (``str``; a tombstone may reach Python as None).

        ``uid`` names the operator when one pipeline has several sources (one per
        topic, so that a bad message is reported against the topic it came from);
        they share the pipeline's consumer group. ``fetch_wait_ms``: see
        :data:`LIVE_FETCH_WAIT_MS`.

        Topics are subscribed by pattern so a topic the CDC runner has not created
        yet is picked up by partition discovery instead of failing the job. Starts
        from the group's committed offsets, else from the earliest offset (the dev
        broker's "latest" is wrong, and a cache must see every change; see ece.kafka).
        """
        from pyflink.common import Types, WatermarkStrategy
        from pyflink.datastream.connectors.kafka import KafkaOffsetsInitializer, KafkaSource
        from pyflink.java_gateway import get_gateway

        jvm = get_gateway().jvm
        committed = jvm.org.apache.flink.connector.kafka.source.enumerator.initializer \
            .OffsetsInitializer.committedOffsets(
                jvm.org.apache.kafka.clients.consumer.OffsetResetStrategy.EARLIEST)
        pattern = "|".join(re.escape(t) for t in source_topics)
        builder = (
            KafkaSource.builder()
            .set_bootstrap_servers(self.settings.kafka_bootstrap)
            .set_topic_pattern(f"^({pattern})$")
            .set_group_id(self.group_id(pipeline))
            .set_starting_offsets(KafkaOffsetsInitializer(committed))
            .set_property("commit.offsets.on.checkpoint", "true")
            .set_property("partition.discovery.interval.ms",
                          str(self.options.partition_discovery_ms))
            .set_property("fetch.max.wait.ms", str(fetch_wait_ms))
            .set_property("client.id.prefix", f"ece-flink-{pipeline}")
        )
        for key, value in kafka.java_consumer_properties(self.settings).items():
            builder = builder.set_property(key, value)
        # StringDeserializer maps a tombstone to null, which the value-only wrapper drops;
        # SimpleStringSchema would throw on it and fail the job.
        string_deserializer = jvm.org.apache.kafka.common.serialization.StringDeserializer
        builder._j_builder.setDeserializer(
            jvm.org.apache.flink.connector.kafka.source.reader.deserializer
            .KafkaRecordDeserializationSchema.valueOnly(string_deserializer._java_lang_class))
        source = builder.build()
        return self.env.from_source(
            source, WatermarkStrategy.no_watermarks(), f"{pipeline}: {', '.join(source_topics)}",
            type_info=Types.STRING(),
        ).uid(uid or f"{pipeline}-source")

    # --- Kafka out ------------------------------------------------------

    @property
    def table_env(self) -> Any:
        if self._t_env is None:
            from pyflink.table import StreamTableEnvironment

            self._t_env = StreamTableEnvironment.create(self.env)
            self._statements = self._t_env.create_statement_set()
        return self._t_env

    def keyed_sink(self, stream: Any, topic: str, name: str) -> None:
        """Write a stream of ``Row(k, v)`` (text key, text value) to ``topic``, at least once.

        The DataStream KafkaSink can only serialize the whole element as key, so keyed
        output goes through the Table API's Kafka connector with the ``raw`` format on
        both key and value, attached back to this same job.
        """
        from pyflink.table import DataTypes, Schema, TableDescriptor

        t_env = self.table_env
        table_name = self._sinks.get(topic)
        if table_name is None:
            table_name = f"sink_{len(self._sinks)}"
            schema = (Schema.new_builder()
                      .column("k", DataTypes.STRING())
                      .column("v", DataTypes.STRING())
                      .build())
            descriptor = (
                TableDescriptor.for_connector("kafka")
                .schema(schema)
                .option("topic", topic)
                .option("properties.bootstrap.servers", self.settings.kafka_bootstrap)
                .option("key.format", "raw")
                .option("key.fields", "k")
                .option("value.format", "raw")
                .option("value.fields-include", "EXCEPT_KEY")
                .option("sink.delivery-guarantee", "at-least-once")
                .option("properties.linger.ms", "5")
                .build()
            )
            t_env.create_temporary_table(table_name, descriptor)
            self._sinks[topic] = table_name
        self._statements.add_insert(table_name, t_env.from_data_stream(stream))
        log.info("%s -> %s", name, topic)

    def dlq(self, stream: Any, pipeline: str) -> None:
        """Send a pipeline's failures (``Row(k=source topic, v=JSON)``) to the DLQ topic."""
        self.keyed_sink(stream, topics.dlq_topic(self.settings.topic_prefix), f"{pipeline} dlq")

    # --- run ------------------------------------------------------------

    def execute(self, job_name: str) -> None:
        if self._statements is not None:
            self._statements.attach_as_datastream()
        self.env.execute(job_name)


def ensure_topics(settings: Settings, names: list[str]) -> None:
    """Create the derived topics this job writes if missing (never the CDC topics)."""
    for name in kafka.ensure_topics(settings, names, timeout=10):
        log.info("created topic %s", name)


def create_context(settings: Settings, epoch: str, options: JobOptions,
                   jars: list[Path]) -> JobContext:
    """Environment with connector jars, checkpointing and (if found) restored state.

    State is restored from this epoch's newest retained checkpoint, so buffered
    writes and (later) window state survive a restart; with no checkpoint the
    sources fall back to the group's committed offsets.
    """
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment

    minicluster.prune_other_epochs(settings, epoch)
    ckpt_root = minicluster.checkpoint_root(settings, epoch)
    ckpt_root.mkdir(parents=True, exist_ok=True)
    restored = minicluster.latest_checkpoint(settings, epoch) if options.restore else None

    config = Configuration()
    # The local executor does not read FLINK_CONF_DIR's config.yaml (only the JVM launcher
    # does), so the cluster options go into the job's configuration as well. On a session
    # cluster they would override the cluster's own (``parallelism.default`` above all).
    job_options = (minicluster.JOB_OPTIONS if options.on_cluster
                   else minicluster.cluster_options(settings))
    for key, value in job_options.items():
        config.set_string(key, value)
    if jars:  # none when the cluster's lib already holds them (the local session cluster)
        config.set_string("pipeline.jars", ";".join(p.resolve().as_uri() for p in jars))
    config.set_string("execution.checkpointing.interval", f"{options.checkpoint_interval_ms}ms")
    config.set_string("execution.checkpointing.dir", ckpt_root.resolve().as_uri())
    config.set_string("execution.checkpointing.externalized-checkpoint-retention",
                      "RETAIN_ON_CANCELLATION")
    config.set_string("execution.checkpointing.num-retained", "1")
    config.set_string("execution.checkpointing.min-pause", "200ms")
    config.set_string("state.backend.type", "hashmap")
    config.set_string("restart-strategy.type", "exponential-delay")
    config.set_string("restart-strategy.exponential-delay.initial-backoff", "1s")
    config.set_string("restart-strategy.exponential-delay.max-backoff", "30s")
    if restored is not None:
        config.set_string("execution.state-recovery.path", restored.resolve().as_uri())
        config.set_string("execution.state-recovery.claim-mode", "CLAIM")
        # A pipeline added since the checkpoint starts fresh; one removed is dropped.
        config.set_string("execution.state-recovery.ignore-unclaimed-state", "true")
        for stale in ckpt_root.iterdir():
            if stale != restored.parent:
                shutil.rmtree(stale, ignore_errors=True)
        log.info("restoring state from %s", restored)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_buffer_timeout(10)
    return JobContext(settings=settings, epoch=epoch, env=env, options=options,
                      restored_from=restored)
