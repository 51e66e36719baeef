"""``python -m streaming.cdc``: stream every captured table into Kafka until SIGTERM.

Exit codes: 0 stopped on request, 1 gave up after retries, 2 a condition that needs
a human (lost slot, missing publication): the log says which and how to fix it.
"""

from __future__ import annotations

import argparse
import os
import sys

from ece.log import configure
from ece.settings import get_settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m streaming.cdc",
        description="Debezium CDC: captured Postgres tables -> Kafka topics "
                    "<prefix>.public.<table>. Addresses come from ECE_* settings.",
    )
    parser.add_argument("--partitions", type=int, default=settings.cdc_partitions,
                        help="partitions of topics created up front (ECE_CDC_PARTITIONS)")
    parser.add_argument("--max-retries", type=int, default=settings.cdc_max_retries,
                        help="failed cycles in a row before giving up (ECE_CDC_MAX_RETRIES)")
    parser.add_argument("--heap", default=settings.cdc_heap, help="JVM max heap (ECE_CDC_HEAP)")
    parser.add_argument("--resnapshot", action="store_true",
                        help="forget Debezium's offsets and snapshot every table again")
    parser.add_argument("--log-level", default=settings.log_level, help="(ECE_LOG_LEVEL)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure(args.log_level)
    from streaming.cdc.runner import CdcRunner, RunnerOptions

    runner = CdcRunner(get_settings(), RunnerOptions(
        partitions=args.partitions, max_retries=args.max_retries, heap=args.heap,
        resnapshot=args.resnapshot))
    runner.install_signal_handlers()
    code = runner.run()
    sys.stdout.flush()
    sys.stderr.flush()
    # The JVM may keep non-daemon threads alive after close(): leave without waiting.
    os._exit(code)


if __name__ == "__main__":
    main()
