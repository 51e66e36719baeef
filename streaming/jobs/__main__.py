"""``python -m streaming.jobs``: build every (or the chosen) pipeline into one job and run it.

Two ways, one program:

- by itself (``ECE_FLINK_MODE=minicluster``): runs until stopped (SIGTERM from the
  supervisor); the local MiniCluster's REST API / UI answers on
  127.0.0.1:<flink_rest_port> while it runs;
- ``--on-cluster``, as the program of ``flink run -d -pym streaming.jobs`` (session
  mode, see ops/stack/flink_session.py): the same job is built in the ``flink``
  client's JVM and submitted to the session cluster, then the program exits.

Either way the job's state is restored from this epoch's newest retained checkpoint.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ece.contracts import topics
from ece.kafka import cluster_id
from ece.settings import get_settings
from streaming.jobs import jars, minicluster, registry
from streaming.jobs.runtime import JobOptions, create_context, ensure_topics

log = logging.getLogger("streaming.jobs")

JOB_NAME = "ece-streams"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m streaming.jobs",
        description="Run ECE's Flink pipelines as one job on a local MiniCluster.",
    )
    parser.add_argument("--pipelines", default=",".join(registry.PIPELINES),
                        help="comma-separated pipelines to run (default: all: %(default)s)")
    parser.add_argument("--list", action="store_true", help="list the pipelines and exit")
    parser.add_argument("--checkpoint-interval-ms", type=int,
                        default=JobOptions.checkpoint_interval_ms,
                        help="checkpoint (and Kafka offset commit) interval (default: "
                             "%(default)s)")
    parser.add_argument("--no-restore", action="store_true",
                        help="ignore retained checkpoints; start from committed offsets")
    parser.add_argument("--on-cluster", action="store_true",
                        help="submitted by `flink run` to a session cluster (session mode)")
    parser.add_argument("--ship-jars", action="store_true",
                        help="with --on-cluster: ship the connector jars with the job "
                             "(a cluster whose lib/ lacks them)")
    parser.add_argument("--jars-only", action="store_true",
                        help="fetch and verify the connector jars, then exit (install step)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.list:
        for name, module_path in registry.PIPELINES.items():
            print(f"{name}\t{module_path}")
        return 0
    jar_paths = jars.ensure_jars()
    if args.jars_only:
        for path in jar_paths:
            print(path)
        return 0
    names = [n.strip() for n in args.pipelines.split(",") if n.strip()]
    modules = [registry.load(n) for n in names]
    settings = get_settings()
    epoch = cluster_id(settings, timeout=30)
    ensure_topics(settings, [topics.dlq_topic(settings.topic_prefix)])
    if not args.on_cluster:  # the client's JVM (flink run) is started already otherwise
        minicluster.prepare_conf_dir(settings)
        minicluster.forward_jvm_stderr()
    options = JobOptions(checkpoint_interval_ms=args.checkpoint_interval_ms,
                         restore=not args.no_restore, on_cluster=args.on_cluster)
    shipped = jar_paths if not args.on_cluster or args.ship_jars else []
    ctx = create_context(settings, epoch, options, shipped)
    for module in modules:
        module.build(ctx)
        log.info("pipeline %s added", module.NAME)
    if args.on_cluster:
        log.info("submitting job %s (epoch %s, pipelines %s)", JOB_NAME, epoch, ",".join(names))
        ctx.execute(JOB_NAME)  # detached (flink run -d): returns once submitted
        return 0
    log.info("starting job %s (epoch %s, pipelines %s, REST 127.0.0.1:%s)",
             JOB_NAME, epoch, ",".join(names), settings.flink_rest_port)
    try:
        ctx.execute(JOB_NAME)
    finally:
        minicluster.cleanup_tmp(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
