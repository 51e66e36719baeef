"""Resources, chosen per environment from the one settings object.

``settings.env`` (dev | test | prod) picks the landing knobs: tests use small
batches and short polls so they finish fast; prod lands in large batches. The
addresses always come from settings, so pointing ``ECE_LAKE_CATALOG`` or
``ECE_KAFKA_BOOTSTRAP`` elsewhere moves Dagster with every other process.
"""

import threading
import time
from pathlib import Path
from typing import Any

import duckdb
from dagster import ConfigurableResource

from ece.settings import Settings, get_settings
from warehouse.bronze import LandingConfig
from warehouse.lake import connect

# env -> landing knobs (batch size per lake transaction, cap per topic per run, poll wait).
# The poll wait is paid once per topic with new events (the short last batch that
# proves the topic drained): 1 s of it made up half of a small-delta refresh. A
# local broker answers a fetch in milliseconds; a batch cut short only lands the
# rest on the next run (the watermarks still show it pending).
LANDING_BY_ENV: dict[str, dict[str, Any]] = {
    "dev": {"batch_size": 5_000, "max_messages_per_topic": 200_000, "poll_timeout_s": 0.3},
    "test": {"batch_size": 500, "max_messages_per_topic": 50_000, "poll_timeout_s": 0.3},
    "prod": {"batch_size": 20_000, "max_messages_per_topic": 2_000_000, "poll_timeout_s": 2.0},
}

_connections: dict[tuple[str, str, bool], duckdb.DuckDBPyConnection] = {}
_checked: dict[tuple[str, str, bool], float] = {}  # when the connection last answered
_lock = threading.Lock()
# A run's steps ask for cursors back to back: one round trip per step to prove the
# connection alive cost 15 ms each (x 40 steps); a connection that answered this
# recently is trusted.
ALIVE_FOR_S = 5.0


def _alive(con: duckdb.DuckDBPyConnection) -> bool:
    """One round trip to the catalog database."""
    try:
        con.execute("FROM ece.current_snapshot()").fetchall()
        return True
    except duckdb.Error:
        return False


class LakeResource(ConfigurableResource):  # type: ignore[type-arg]
    """The DuckLake, attached as ``ece``.

    Loading the extensions and attaching costs ~1 s, so one base connection is
    kept per process and every step gets its own cursor (own transactions, same
    attached lake).
    """

    catalog: str
    data_path: str

    def settings(self) -> Settings:
        return get_settings().model_copy(
            update={"lake_catalog": self.catalog, "lake_data_path": Path(self.data_path)})

    def cursor(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        key = (self.catalog, self.data_path, read_only)
        with _lock:
            base = _connections.get(key)
            fresh = time.monotonic() - _checked.get(key, float("-inf")) < ALIVE_FOR_S
            if base is not None and not fresh and not _alive(base):
                # The code server lives for days (the sensor runs there): reconnect
                # after a Postgres restart instead of failing every tick.
                _connections.pop(key, None)
                base = None
            if base is None:
                base = _connections[key] = connect(self.settings(), read_only=read_only)
            _checked[key] = time.monotonic()
            return base.cursor()


class LandingResource(ConfigurableResource):  # type: ignore[type-arg]
    """Where CDC topics are read from, and how much per run."""

    bootstrap: str
    topic_prefix: str = "ece"
    batch_size: int = 5_000
    max_messages_per_topic: int = 200_000
    poll_timeout_s: float = 1.0

    def config(self) -> LandingConfig:
        return LandingConfig(bootstrap=self.bootstrap, batch_size=self.batch_size,
                             max_messages_per_topic=self.max_messages_per_topic,
                             poll_timeout_s=self.poll_timeout_s, prefix=self.topic_prefix)


def resources_for(settings: Settings) -> dict[str, Any]:
    """The resource set of this environment (unknown envs get the dev knobs)."""
    knobs = LANDING_BY_ENV.get(settings.env, LANDING_BY_ENV["dev"])
    return {
        "lake": LakeResource(catalog=settings.lake_catalog, data_path=str(settings.lake_path)),
        "landing": LandingResource(bootstrap=settings.kafka_bootstrap,
                                   topic_prefix=settings.topic_prefix, **knobs),
    }
