"""The local MiniCluster's configuration folder, temp space and checkpoints.

PyFlink starts its JVM from the ``FLINK_CONF_DIR`` it finds in the environment,
before any Python-side configuration applies, so memory caps, bind addresses,
port ranges and temp folders must be written into a copy of ``pyflink/conf``.
Everything the JVM writes lives under ``<data_dir>/flink`` (nothing in /tmp),
so a killed run leaves nothing behind that the next start does not clean.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

import yaml

from ece.settings import Settings

log = logging.getLogger(__name__)

# -XX:-UsePerfData: no /tmp/hsperfdata_<user>/<pid> file left behind by a killed JVM.
JVM_OPTS = "-Xmx768m -XX:-UsePerfData -XX:+ExitOnOutOfMemoryError"


def flink_home() -> Path:
    import pyflink

    return Path(pyflink.__file__).resolve().parent


def flink_dir(settings: Settings) -> Path:
    return settings.data_dir / "flink"


def tmp_dir(settings: Settings) -> Path:
    return flink_dir(settings) / "tmp"


def checkpoint_root(settings: Settings, epoch: str) -> Path:
    """Checkpoints are per broker epoch: offsets of a vanished broker mean nothing."""
    return flink_dir(settings) / "checkpoints" / epoch


def flatten_yaml(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten_yaml(value, name))
        else:
            flat[name] = value
    return flat


# Options of the job itself, wherever it runs (the MiniCluster or a session cluster):
# Python UDFs in the TaskManager's JVM (pemja), small buffers for latency. In thread
# mode a Python operator emits each result as it is produced and finishing a bundle
# does nothing (flink-python 2.0's embedded operators: invokeFinishBundle is empty),
# so the bundle time only sets how often a timer per Python operator fires to check:
# at 5 ms that was almost half of the idle job's CPU (P6: 65% of a core, 41% at 100 ms,
# 35% at 1 s), with the same commit -> cache latency (P3 p50 48 ms at 5 and 100 ms).
JOB_OPTIONS = {
    "python.execution-mode": "thread",
    "python.fn-execution.bundle.time": "1000",
    "execution.buffer-timeout.interval": "10ms",
}


def cluster_options(settings: Settings) -> dict[str, str]:
    """Options for the local cluster: loopback only, capped, fast, temp under data_dir."""
    tmp = tmp_dir(settings)
    return {
        "rest.address": "127.0.0.1",
        "rest.bind-address": "127.0.0.1",
        "rest.port": str(settings.flink_rest_port),
        "jobmanager.rpc.address": "127.0.0.1",
        "jobmanager.bind-host": "127.0.0.1",
        "taskmanager.host": "127.0.0.1",
        "taskmanager.bind-host": "127.0.0.1",
        "taskmanager.rpc.port": "50100-50199",
        "blob.server.port": "50200-50299",
        "taskmanager.numberOfTaskSlots": "4",
        "parallelism.default": "1",
        "io.tmp.dirs": str(tmp),
        "web.tmpdir": str(tmp / "web"),
        **JOB_OPTIONS,
    }


def prepare_conf_dir(settings: Settings) -> Path:
    """Write ``<data_dir>/flink/conf`` and point ``FLINK_CONF_DIR``/``FLINK_LOG_DIR`` at it.

    Also cleans the temp folder a previous (killed) run may have left.
    """
    base = flink_dir(settings)
    conf = base / "conf"
    tmp = tmp_dir(settings)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, exist_ok=True)
    if conf.exists():
        shutil.rmtree(conf)
    shutil.copytree(flink_home() / "conf", conf)
    original = yaml.safe_load((conf / "config.yaml").read_text()) or {}
    flat = flatten_yaml(original)
    java_opts = str(flat.get("env.java.opts.all", ""))
    flat["env.java.opts.all"] = f"{java_opts} {JVM_OPTS} -Djava.io.tmpdir={tmp}".strip()
    flat.update(cluster_options(settings))
    for noisy in ("jobmanager.memory.process.size", "taskmanager.memory.process.size"):
        flat.pop(noisy, None)  # the MiniCluster shares one JVM capped by -Xmx instead
    (conf / "config.yaml").write_text(yaml.safe_dump(flat, default_flow_style=False))
    # Variables PyFlink's JVM launcher reads (it takes no arguments for them):
    os.environ["FLINK_CONF_DIR"] = str(conf)
    os.environ["FLINK_LOG_DIR"] = str(settings.logs_dir)
    os.environ["TMPDIR"] = str(tmp)  # PyFlink's own temp files (gateway handshake, pemja)
    tempfile.tempdir = str(tmp)  # the module caches its folder on first use
    for properties in conf.glob("log4j*.properties"):
        with properties.open("a") as fh:  # a warning per second per sink otherwise
            fh.write("\nlogger.ece_metrics.name = org.apache.flink.metrics.MetricGroup\n"
                     "logger.ece_metrics.level = ERROR\n")
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    return conf


def latest_checkpoint(settings: Settings, epoch: str) -> Path | None:
    """The newest completed checkpoint of this epoch (one with ``_metadata``), if any."""
    root = checkpoint_root(settings, epoch)
    done = [p.parent for p in root.glob("*/chk-*/_metadata")]
    if not done:
        return None
    return max(done, key=lambda p: int(p.name.split("-", 1)[1]))


def prune_other_epochs(settings: Settings, epoch: str) -> None:
    """Checkpoints of older broker epochs point at offsets that no longer exist."""
    parent = flink_dir(settings) / "checkpoints"
    if not parent.exists():
        return
    for child in parent.iterdir():
        if child.name != epoch:
            log.info("removing checkpoints of old epoch %s", child.name)
            shutil.rmtree(child, ignore_errors=True)


def cleanup_tmp(settings: Settings) -> None:
    shutil.rmtree(tmp_dir(settings), ignore_errors=True)


def _pump(stream: IO[bytes]) -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.buffer.write(b"[jvm] " + line)
        sys.stdout.buffer.flush()


def forward_jvm_stderr() -> None:
    """Copy the gateway JVM's stderr into our log.

    PyFlink starts the JVM with ``stderr=PIPE`` and never reads it after the
    handshake: a JVM that writes enough to stderr would block on a full pipe, and
    its startup errors would be invisible in ``flink.log``.
    """
    import pyflink.java_gateway as java_gateway

    original = java_gateway.launch_gateway_server_process
    if getattr(original, "_ece_forwarding", False):
        return

    def launch(env: Any, args: Any) -> Any:
        proc = original(env, args)
        threading.Thread(target=_pump, args=(proc.stderr,), name="jvm-stderr",
                         daemon=True).start()
        return proc

    launch._ece_forwarding = True  # type: ignore[attr-defined]
    java_gateway.launch_gateway_server_process = launch
