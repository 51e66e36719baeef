"""Plumbing shared by the two NFT workers (mint saga, chain transfers), by concern:

* :mod:`.feed` - :class:`ChangeFeed`: CDC topics in a consumer group keyed by the
  broker epoch; events only wake jobs (:func:`feed_and_sweep` runs feed and sweep).
* :mod:`.scheduler` - :class:`Scheduler` (one job per key, bounded concurrency,
  re-run on a mid-job poke), :class:`WakeFilter` (one query per burst of events
  instead of a job per key) and the database sweep.
* :mod:`.retry` - which errors are transient or permanent, and :func:`with_retries`.
* :mod:`.dlq` - :class:`DeadLetters`: failures to the DLQ topic.
* :mod:`.db` - the worker's engine and :func:`advisory_lock` (one job per key
  across processes).
* :mod:`.chain` - :class:`RecordingClient` (signatures stored before sending) and
  :class:`FeePayerGuard`.
* :mod:`.process` - :func:`crash_point` (the ``ECE_TEST_CRASH_AT`` test hook) and
  :func:`run_main`.
"""

from api.nfts.runtime.chain import FeePayerGuard, RecordingClient, recording
from api.nfts.runtime.db import advisory_lock, lock_key, make_sessions
from api.nfts.runtime.dlq import DeadLetters
from api.nfts.runtime.feed import ChangeFeed, broker_epoch, feed_and_sweep, parse_uuid
from api.nfts.runtime.process import crash_point, run_main
from api.nfts.runtime.retry import (
    PayerShort,
    insufficient_funds,
    is_permanent,
    is_transient,
    with_retries,
)
from api.nfts.runtime.scheduler import (
    Scheduler,
    Submitter,
    WakeFilter,
    sleep_or_stop,
    sweep_loop,
)

__all__ = [
    "ChangeFeed",
    "DeadLetters",
    "FeePayerGuard",
    "PayerShort",
    "RecordingClient",
    "Scheduler",
    "Submitter",
    "WakeFilter",
    "advisory_lock",
    "broker_epoch",
    "crash_point",
    "feed_and_sweep",
    "insufficient_funds",
    "is_permanent",
    "is_transient",
    "lock_key",
    "make_sessions",
    "parse_uuid",
    "recording",
    "run_main",
    "sleep_or_stop",
    "sweep_loop",
    "with_retries",
]
