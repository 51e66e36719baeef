"""The background workers (``python -m api.workers``) as a stack part.

Ready means *working*: the process's heartbeat key is in Redis, which the workers
write only after each of them completed a cycle against Postgres. An external
part (workers someone else runs) is healthy when any worker heartbeat is fresh.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Sequence

import redis as redis_lib

from api.workers.heartbeat import HEARTBEAT_PREFIX, heartbeat_key
from ece.settings import REPO_ROOT, Settings
from ops.stack.base import ManagedProcess, Part, wait_until

READY_TIMEOUT_S = 60.0


class Workers(Part):
    """The marketplace workers: auction closer, trade expirer, idempotency-key purger."""

    name = "workers"
    depends_on: tuple[str, ...] = ("migrate", "redis")
    default_only = "auctions,trades,idempotency,audit"

    def __init__(self, settings: Settings, *, external: bool = False,
                 args: Sequence[str] = ()) -> None:
        """``args`` are extra ``python -m api.workers`` options (``--only trades``, ...)."""
        super().__init__(settings, external=external)
        self.args = list(args)

    @property
    def url(self) -> str:
        return f"pid {self.pid}" if self.pid is not None else ""

    @property
    def pid(self) -> int | None:
        if self.process is None or self.process.proc is None:
            return None
        return self.process.proc.pid

    def start(self) -> None:
        if self.external:
            return
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the process without waiting (several parts can then warm up together)."""
        if self.process is not None:  # a restart (e.g. after the process was killed)
            self.process.stop()
        only = [] if "--only" in self.args else ["--only", self.default_only]
        argv = [sys.executable, "-m", "api.workers", *only, *self.args]
        self.process = ManagedProcess(self.name, argv, self.log_path, env=self.child_environment(),
                                      cwd=REPO_ROOT, stop_signal=signal.SIGTERM,
                                      stop_timeout=15)
        self.process.start()

    def wait_ready(self) -> None:
        assert self.process is not None and self.process.proc is not None, "launch() first"
        wait_until(self._heartbeat_present, READY_TIMEOUT_S, "heartbeat in Redis", self.name,
                   self.process.proc, self.log_path, fix="read the log: the workers reach "
                   "Postgres and Redis with ECE_DATABASE_URL and ECE_REDIS_URL")

    def _redis(self) -> redis_lib.Redis:
        return redis_lib.Redis.from_url(self.settings.redis_url, socket_timeout=2,
                                        socket_connect_timeout=2)

    def _heartbeat_present(self) -> bool:
        pid = self.pid
        if pid is None:
            return False
        with self._redis() as client:
            return bool(client.exists(heartbeat_key(pid)))

    def _supervised_pid(self) -> tuple[int, str] | None:
        """``(pid, state)`` the running ``ece up`` recorded for this part, if it runs one."""
        if self.process is not None:
            return None
        from ops.stack.supervision import read_state, supervisor_alive

        supervised = read_state(self.settings)
        record = ((supervised or {}).get("parts") or {}).get(self.name) or {}
        if not supervisor_alive(supervised):
            return None
        if record.get("state") == "restarting":
            return 0, "restarting"
        pid = record.get("pid")  # None for a part ece up only health-checks (external)
        return (pid, "running") if isinstance(pid, int) and record.get("state") == "running" \
            else None

    def health(self) -> tuple[bool, str]:
        try:
            with self._redis() as client:
                supervised = self._supervised_pid()
                if supervised is not None:
                    # `ece status` about `ece up`'s workers: the pid the supervisor runs now
                    # must beat (a killed one's last heartbeat outlives it by its TTL).
                    now_pid, now_state = supervised
                    beat = client.get(heartbeat_key(now_pid)) if now_state == "running" else None
                    if beat is None:
                        return False, f"no heartbeat from pid {now_pid} ({now_state})"
                    names = sorted(json.loads(beat)["workers"])
                    return True, f"pid {now_pid} workers {', '.join(names)}"
                if self.external or self.process is None:
                    # Not ours (external, or `ece status` asking about `ece up`'s workers):
                    # healthy when some live process runs every worker this part stands for.
                    wanted = set(self.default_only.split(","))
                    pids = [
                        state["pid"]
                        for key in client.scan_iter(f"{HEARTBEAT_PREFIX}*", count=100)
                        if (value := client.get(key)) is not None
                        and wanted <= set((state := json.loads(value))["workers"])
                    ]
                    return (bool(pids), f"{len(pids)} process(es) running "
                            f"{self.default_only} with a fresh heartbeat")
                pid = self.pid
                raw = client.get(heartbeat_key(pid)) if pid is not None else None
        except redis_lib.RedisError as exc:
            return False, f"redis: {exc}"
        if self.process is not None and not self.process.alive:
            return False, "worker process exited"
        if raw is None:
            return False, "no heartbeat"
        state = json.loads(raw)
        return True, f"pid {state['pid']} workers {', '.join(sorted(state['workers']))}"


class ChainWorkers(Workers):
    """The NFT workers (mint saga, chain transfers): they need the stream and the chain."""

    name = "chain-workers"
    depends_on = ("migrate", "redis", "cdc", "solana", "arweave")
    default_only = "mints,transfers,anchors"
