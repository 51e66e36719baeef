"""A standalone Flink session cluster from the distribution inside ``apache-flink``.

``ECE_FLINK_MODE=session`` runs the job the way a production Flink runs it: a
JobManager and ``ECE_FLINK_TASKMANAGERS`` TaskManagers (``pyflink/bin``, each a
JVM in the foreground, so each is a supervisable :class:`ManagedProcess`), and
the job submitted with ``flink run -d -p ECE_FLINK_PARALLELISM``. Losing a
TaskManager is the cluster's business: the JobManager restarts the job from its
last checkpoint on the slots left. Every TaskManager has ``parallelism`` slots,
so one survivor can host the whole job; the part does not replace a lost one
(in production the resource manager, Kubernetes or systemd does).

Everything lives under ``<data_dir>/flink/session``: the ``config.yaml`` Flink
2.0 reads (``flink-conf.yaml`` is no longer read), a ``lib`` folder of links to
``pyflink/lib`` plus the Kafka connector jars (the classpath a Flink image with
the connector baked in would have), and temp space. The REST port is
``ECE_FLINK_REST_PORT``; the JobManager's RPC port is a free port; every other
port is ephemeral and everything binds to 127.0.0.1.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ece.settings import REPO_ROOT, Settings
from ops.stack.base import ManagedProcess, free_port
from streaming.jobs import minicluster

JM_PROCESS_SIZE = "1024m"  # RSS ~300 MB idle
# 900m does not start (framework + network + managed do not fit); 1280m with a small
# managed fraction does, and leaves the Python UDFs (thread mode: in the JVM) room.
TM_PROCESS_SIZE = "1280m"
TM_MANAGED_FRACTION = "0.1"
JVM_OPTS = "-XX:-UsePerfData -XX:+ExitOnOutOfMemoryError"


def session_dir(settings: Settings) -> Path:
    return minicluster.flink_dir(settings) / "session"


def conf_dir(settings: Settings) -> Path:
    return session_dir(settings) / "conf"


def lib_dir(settings: Settings) -> Path:
    return session_dir(settings) / "lib"


def session_tmp(settings: Settings) -> Path:
    return session_dir(settings) / "tmp"


def jobmanager_address(settings: Settings) -> str:
    """``host:port`` of the REST endpoint jobs are submitted to (``flink run -m``)."""
    return settings.flink_jobmanager or f"127.0.0.1:{settings.flink_rest_port}"


def cluster_config(settings: Settings, rpc_port: int, python: str = sys.executable
                   ) -> dict[str, str]:
    """The cluster's options (on top of the shipped ``config.yaml``), as flat keys."""
    tmp = session_tmp(settings)
    slots = settings.flink_parallelism
    return {
        "jobmanager.rpc.address": "127.0.0.1",
        "jobmanager.rpc.port": str(rpc_port),
        "jobmanager.bind-host": "127.0.0.1",
        "jobmanager.memory.process.size": JM_PROCESS_SIZE,
        "rest.address": "127.0.0.1",
        "rest.bind-address": "127.0.0.1",
        "rest.port": str(settings.flink_rest_port),
        "taskmanager.host": "127.0.0.1",
        "taskmanager.bind-host": "127.0.0.1",
        "taskmanager.rpc.port": "0",
        "taskmanager.data.port": "0",
        "blob.server.port": "0",
        "taskmanager.numberOfTaskSlots": str(slots),
        "taskmanager.memory.process.size": TM_PROCESS_SIZE,
        "taskmanager.memory.managed.fraction": TM_MANAGED_FRACTION,
        # Spread the job's subtasks over the TaskManagers: a lost one then really fails
        # tasks (and the survivors take them over), instead of one TM doing everything.
        "taskmanager.load-balance.mode": "SLOTS",
        "parallelism.default": str(settings.flink_parallelism),
        # A killed TaskManager is noticed within seconds (its RPCs fail); the timeout is
        # generous because a loaded 2-core machine stalls JVMs for seconds at a time.
        "heartbeat.interval": "2s",
        "heartbeat.timeout": "30s",
        # RPCs answer within 10 s (the default) on an idle machine only: at a load of 40
        # on 2 cores, deployments timed out and the job restarted before it had run.
        "pekko.ask.timeout": "60s",
        "restart-strategy.type": "exponential-delay",
        "restart-strategy.exponential-delay.initial-backoff": "1s",
        "restart-strategy.exponential-delay.max-backoff": "30s",
        "state.backend.type": "hashmap",
        # The job sets its own (per broker epoch) folder below this one.
        "execution.checkpointing.dir":
            (minicluster.flink_dir(settings) / "checkpoints").resolve().as_uri(),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "python.executable": python,
        "python.client.executable": python,
        "io.tmp.dirs": str(tmp),
        "web.tmpdir": str(tmp / "web"),
    }


def write_conf_dir(settings: Settings, rpc_port: int) -> Path:
    """Fresh ``conf`` (shipped files + our ``config.yaml``), ``lib`` and temp folders."""
    home = minicluster.flink_home()
    conf = conf_dir(settings)
    shutil.rmtree(session_dir(settings), ignore_errors=True)
    shutil.copytree(home / "conf", conf)
    flat = minicluster.flatten_yaml(yaml.safe_load((conf / "config.yaml").read_text()) or {})
    tmp = session_tmp(settings)
    java_opts = str(flat.get("env.java.opts.all", ""))  # the --add-opens list Java 17 needs
    flat["env.java.opts.all"] = f"{java_opts} {JVM_OPTS} -Djava.io.tmpdir={tmp}".strip()
    flat.update(cluster_config(settings, rpc_port))
    (conf / "config.yaml").write_text(yaml.safe_dump(flat, default_flow_style=False))
    for properties in conf.glob("log4j*.properties"):
        with properties.open("a") as fh:  # a warning per second per sink otherwise
            fh.write("\nlogger.ece_metrics.name = org.apache.flink.metrics.MetricGroup\n"
                     "logger.ece_metrics.level = ERROR\n")
    tmp.mkdir(parents=True, exist_ok=True)
    return conf


def write_lib_dir(settings: Settings, jars: list[Path]) -> Path:
    """``pyflink/lib`` plus the connector jars, as links (``FLINK_LIB_DIR``)."""
    lib = lib_dir(settings)
    shutil.rmtree(lib, ignore_errors=True)
    lib.mkdir(parents=True)
    for jar in [*sorted((minicluster.flink_home() / "lib").glob("*.jar")), *jars]:
        (lib / jar.name).symlink_to(jar.resolve())
    return lib


def prepare_folders(settings: Settings, jars: list[Path], rpc_port: int = 0) -> None:
    """Fresh conf, lib and temp folders (for the cluster, or only the ``flink`` client)."""
    write_conf_dir(settings, rpc_port)
    write_lib_dir(settings, jars)


def flink_environment(settings: Settings) -> dict[str, str]:
    """What ``pyflink/bin`` scripts read: home, our conf, lib and log folders."""
    return {
        "FLINK_HOME": str(minicluster.flink_home()),
        "FLINK_CONF_DIR": str(conf_dir(settings)),
        "FLINK_LIB_DIR": str(lib_dir(settings)),
        "FLINK_LOG_DIR": str(settings.logs_dir),
        "TMPDIR": str(session_tmp(settings)),
    }


def taskmanager_id(index: int) -> str:
    """The TaskManager's resource id, as ``/taskmanagers`` reports it."""
    return f"ece-tm-{index}"


def jobmanager_argv() -> list[str]:
    return [str(minicluster.flink_home() / "bin" / "jobmanager.sh"), "start-foreground"]


def taskmanager_argv(index: int) -> list[str]:
    return [str(minicluster.flink_home() / "bin" / "taskmanager.sh"), "start-foreground",
            f"-Dtaskmanager.resource-id={taskmanager_id(index)}"]


def submit_argv(settings: Settings, python: str = sys.executable,
                job_args: tuple[str, ...] = ()) -> list[str]:
    """``flink run``: detached, at the configured parallelism, ``streaming.jobs`` by module.

    The venv's python runs the client program and the UDFs (``-pyexec``); ``streaming``
    and ``ece`` are importable from it because the project is installed (editable) in
    it. A cluster on other machines needs the same: ``-pyfs`` would ship the code, but
    not the dependencies the UDFs import (redis, psycopg, ...).
    """
    return [
        str(minicluster.flink_home() / "bin" / "flink"), "run", "--detached",
        "-m", jobmanager_address(settings),
        "-p", str(settings.flink_parallelism),
        "-pyexec", python, "-pyclientexec", python,
        "-pym", "streaming.jobs", "--on-cluster", *job_args,
    ]


@dataclass
class SessionCluster:
    """The local JobManager and TaskManagers: started, watched and stopped as processes."""

    settings: Settings
    jars: list[Path]
    jobmanager: ManagedProcess | None = None
    taskmanagers: list[ManagedProcess] = field(default_factory=list)

    def _process(self, name: str, argv: list[str]) -> ManagedProcess:
        log = self.settings.logs_dir / f"{name}.log"
        return ManagedProcess(name, argv, log, cwd=REPO_ROOT,
                              env={**self.settings.as_environment(),
                                   **flink_environment(self.settings)},
                              stop_timeout=15.0)

    def start(self) -> None:
        prepare_folders(self.settings, self.jars, free_port())
        self.jobmanager = self._process("flink-jobmanager", jobmanager_argv())
        self.jobmanager.start()
        for index in range(self.settings.flink_taskmanagers):
            tm = self._process(f"flink-taskmanager-{index}", taskmanager_argv(index))
            tm.start()
            self.taskmanagers.append(tm)

    def stop(self) -> None:
        """TaskManagers first, then the JobManager; each whole process group, killed if slow."""
        for process in [*self.taskmanagers, self.jobmanager]:
            if process is not None:
                process.stop()
        self.taskmanagers = []
        self.jobmanager = None
        shutil.rmtree(session_tmp(self.settings), ignore_errors=True)

    def alive_taskmanagers(self) -> int:
        return sum(tm.alive for tm in self.taskmanagers)
