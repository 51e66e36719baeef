"""The session cluster's generated configuration and the ``flink run`` command line.

What the JVMs read is checked as written (``config.yaml`` parsed back): a wrong key
here is a cluster that listens on every interface, cannot host the parallelism,
or never restarts the job after losing a TaskManager.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from ece.settings import Settings
from ops.stack import flink_session
from ops.stack.flink import Flink
from streaming.jobs import minicluster
from streaming.jobs.__main__ import parse_args


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(data_dir=tmp_path, env="dev", custody_kek=SecretStr("zero"),
                    flink_mode="session", flink_rest_port=18123, **values)


def test_config_yaml_binds_loopback_sizes_slots_and_restarts(tmp_path: Path) -> None:
    settings = _settings(tmp_path, flink_parallelism=3, flink_taskmanagers=2)
    conf = flink_session.write_conf_dir(settings, rpc_port=16123)
    written = yaml.safe_load((conf / "config.yaml").read_text())

    assert conf == tmp_path / "flink" / "session" / "conf"
    for key in ("jobmanager.rpc.address", "jobmanager.bind-host", "rest.address",
                "rest.bind-address", "taskmanager.host", "taskmanager.bind-host"):
        assert written[key] == "127.0.0.1", key
    assert written["rest.port"] == "18123"
    assert written["jobmanager.rpc.port"] == "16123"
    # Every TaskManager can host the whole job, so one survivor takes it over.
    assert written["taskmanager.numberOfTaskSlots"] == "3"
    assert written["parallelism.default"] == "3"
    assert written["taskmanager.memory.process.size"] == "1280m"
    assert written["jobmanager.memory.process.size"] == "1024m"
    assert written["restart-strategy.type"] == "exponential-delay"
    assert written["python.executable"] == sys.executable
    ckpt = written["execution.checkpointing.dir"]
    assert ckpt.startswith("file://") and ckpt.endswith(f"{tmp_path}/flink/checkpoints")
    assert str(tmp_path) in written["io.tmp.dirs"]
    # The shipped --add-opens list stays: the client fails on Java 17 without it.
    opts = written["env.java.opts.all"]
    assert "--add-opens=java.base/java.util=ALL-UNNAMED" in opts
    assert "-XX:-UsePerfData" in opts
    assert (conf / "log4j-console.properties").exists()
    # Nothing of the MiniCluster's folders is touched (both may exist side by side).
    assert conf != minicluster.flink_dir(settings) / "conf"


def test_lib_dir_adds_the_connector_jars_to_the_distribution(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    jar = tmp_path / "flink-connector-kafka-x.jar"
    jar.write_bytes(b"PK")
    lib = flink_session.write_lib_dir(settings, [jar])
    names = {p.name for p in lib.iterdir()}
    shipped = {p.name for p in (minicluster.flink_home() / "lib").glob("*.jar")}
    assert names == shipped | {jar.name}
    assert any(n.startswith("flink-dist") for n in names)
    env = flink_session.flink_environment(settings)
    assert env["FLINK_LIB_DIR"] == str(lib)
    assert env["FLINK_CONF_DIR"] == str(flink_session.conf_dir(settings))


def test_flink_run_argv_submits_the_module_detached_at_the_parallelism(tmp_path: Path) -> None:
    settings = _settings(tmp_path, flink_parallelism=2)
    argv = flink_session.submit_argv(settings, python="/venv/bin/python")
    assert argv[0].endswith("pyflink/bin/flink") and argv[1] == "run"
    assert "--detached" in argv
    assert argv[argv.index("-m") + 1] == "127.0.0.1:18123"
    assert argv[argv.index("-p") + 1] == "2"
    assert argv[argv.index("-pyexec") + 1] == "/venv/bin/python"
    assert argv[argv.index("-pyclientexec") + 1] == "/venv/bin/python"
    assert argv[-3:] == ["-pym", "streaming.jobs", "--on-cluster"]
    # Program arguments after the module are the job's own and parse.
    args = parse_args(argv[argv.index("streaming.jobs") + 1:])
    assert args.on_cluster and not args.ship_jars


def test_an_existing_jobmanager_gets_the_job_and_the_jars(tmp_path: Path) -> None:
    settings = _settings(tmp_path, flink_jobmanager="flink.example:8081")
    argv = flink_session.submit_argv(settings, job_args=("--ship-jars",))
    assert argv[argv.index("-m") + 1] == "flink.example:8081"
    assert parse_args(argv[argv.index("streaming.jobs") + 1:]).ship_jars
    part = Flink(settings)
    assert part.session and part.url == "http://flink.example:8081"


@pytest.mark.parametrize("index", [0, 1])
def test_taskmanagers_carry_a_resource_id_the_rest_api_reports(index: int) -> None:
    argv = flink_session.taskmanager_argv(index)
    assert argv[0].endswith("pyflink/bin/taskmanager.sh") and argv[1] == "start-foreground"
    assert f"-Dtaskmanager.resource-id={flink_session.taskmanager_id(index)}" in argv


def test_minicluster_mode_is_unchanged(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, env="dev", custody_kek=SecretStr("zero"))
    part = Flink(settings)
    assert not part.session
    assert part.url == f"http://127.0.0.1:{settings.flink_rest_port}"
    options = minicluster.cluster_options(settings)
    assert options["parallelism.default"] == "1"
    assert minicluster.JOB_OPTIONS.items() <= options.items()
