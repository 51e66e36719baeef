"""Dagster's three services as one stack part: a code server, the webserver, the daemon.

This is Dagster's own deployment layout (one ``dagster api grpc`` code server that the
webserver and the daemon both load from a workspace of ``grpc_server`` entries), run
on one machine. ``dagster dev`` did the same with two more processes: itself (102 MiB
PSS on this machine, idle) and a code-server proxy between the three (77 MiB), whose
only job is reloading code from the UI, which a deployment restarts for instead.

It imports nothing beyond the standard library (a few MiB, not Dagster's hundred),
and it blocks in ``wait()`` rather than polling, so it costs no CPU while idle. Its
children share its process group: the part stops or kills all of them at once.

If any service ends, the others are stopped and this process exits non-zero, so the
supervisor restarts the whole part (as it did when ``dagster dev`` exited).

``python -m ops.stack.dagster_services --help`` lists the arguments; the Dagster part
(:mod:`ops.stack.dagster`) starts it.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

STOP_TIMEOUT_S = 20.0
CODE_SERVER_TIMEOUT_S = 120.0
SERVICES = ("code server", "webserver", "daemon")  # started in this order
GRACE_S = 2.0  # after a signal to the whole group, for the services to stop on their own


class Stopping(Exception):
    """Raised from the signal handler to leave the blocking ``wait()``."""


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise Stopping(signal.Signals(signum).name)


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def write_workspace(home: Path, host: str, port: int, location: str) -> Path:
    """The workspace the webserver and daemon load: the code server, by address."""
    path = home / "workspace.yaml"
    tmp = path.with_suffix(".tmp")
    tmp.write_text("# Written by ops.stack.dagster_services on each start.\nload_from:\n"
                   f"  - grpc_server:\n      host: {host}\n      port: {port}\n"
                   f"      location_name: {location}\n")
    os.replace(tmp, path)
    return path


def wait_for_port(host: str, port: int, server: subprocess.Popen[bytes]) -> None:
    """Until the code server listens (it loads the code lazily, on the first request)."""
    deadline = time.monotonic() + CODE_SERVER_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"dagster_services: the code server exited ({server.returncode})")
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"dagster_services: the code server did not listen on {host}:{port} "
                     f"within {CODE_SERVER_TIMEOUT_S:.0f}s")


def stop_all(children: list[subprocess.Popen[bytes]], grace: float = 0.0) -> None:
    """Webserver and daemon first (they hold connections to the code server), then it.

    ``grace``: the signal may have gone to the whole group (the part's stop sends it
    so), and a service signalled twice stops at once instead of draining; so first
    give them that long to end by themselves."""
    deadline = time.monotonic() + grace
    while any(c.poll() is None for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    for child in reversed(children):
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
        try:
            child.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ops.stack.dagster_services",
        description="Run Dagster's code server, webserver and daemon together; stop all "
                    "three when one ends. DAGSTER_HOME must be set.")
    parser.add_argument("--module", required=True, help="the definitions module")
    parser.add_argument("--attribute", default="defs", help="its Definitions object")
    parser.add_argument("--location-name", help="the code location's name (default: the "
                        "module's, as a workspace's python_module names it; run and sensor "
                        "records keep it, so it must not change between starts)")
    parser.add_argument("--host", default="127.0.0.1", help="the webserver's address")
    parser.add_argument("--port", type=int, required=True, help="the webserver's port")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    home = Path(os.environ["DAGSTER_HOME"])
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    python = sys.executable
    grpc_host = "127.0.0.1"
    grpc_port = free_port(grpc_host)
    location = args.location_name or args.module
    children: list[subprocess.Popen[bytes]] = []
    grace = 0.0
    try:
        children.append(subprocess.Popen([
            python, "-m", "dagster", "api", "grpc", "--module-name", args.module,
            "--attribute", args.attribute, "--working-directory", os.getcwd(),
            "--location-name", location, "--lazy-load-user-code",
            "--host", grpc_host, "--port", str(grpc_port)]))
        wait_for_port(grpc_host, grpc_port, children[0])
        workspace = str(write_workspace(home, grpc_host, grpc_port, location))
        children.append(subprocess.Popen([
            python, "-m", "dagster_webserver", "--host", args.host, "--port", str(args.port),
            "--workspace", workspace]))
        children.append(subprocess.Popen([
            python, "-m", "dagster._daemon", "run", "--workspace", workspace]))
        names = dict(zip((c.pid for c in children), SERVICES, strict=True))
        pid, status = os.wait()  # blocks until one of them ends
        code = os.waitstatus_to_exitcode(status)
        for child in children:
            if child.pid == pid:
                child.returncode = code  # reaped here: Popen must not wait for it again
        print(f"dagster_services: the {names.get(pid, pid)} ended ({code}); stopping the "
              "others", flush=True)
        return 1
    except Stopping as signalled:
        print(f"dagster_services: {signalled}, stopping", flush=True)
        grace = GRACE_S
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_all(children, grace)


if __name__ == "__main__":
    sys.exit(main())
