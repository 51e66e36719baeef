"""A real Web Push service for tests: npm ``web-push-testing`` 1.2.2 on a free port.

It is a push service as browsers use them: ``POST /subscribe`` makes a
subscription bound to our VAPID public key, pushes to its endpoint are checked
(VAPID JWT signed by that key, aes128gcm decrypted) and kept, ``POST
/get-notifications`` returns the decrypted payloads, ``POST
/expire-subscription/<hash>`` makes later pushes answer 410.

Why not ``web-push-testing --port P start``: that CLI detaches the server (pid
kept in ``./.node-persist`` of the working directory, ``stop`` kills by that pid)
and the server listens on every interface. We run the same package's server
entry (``src/bin/server.js``) in the foreground, with ``listen`` bound to
127.0.0.1, so the test owns its process, stops it by pid and nothing else can
reach it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx

from ops.stack.base import free_port, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER = REPO_ROOT / "node_modules" / "web-push-testing" / "src" / "bin" / "server.js"

# Binds every listen(port) of the process to loopback, then runs the package's server.
_LOOPBACK = """
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (port, ...rest) {
  if (typeof port === 'number' && (rest.length === 0 || typeof rest[0] === 'function')) {
    return listen.call(this, port, '127.0.0.1', ...rest);
  }
  return listen.call(this, port, ...rest);
};
const server = process.argv[1];
process.argv = [process.argv[0], server, process.argv[2]];
require(server);
"""


class PushService:
    """The push service process and its test API (``subscribe``, ``messages``, ``expire``)."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PushService:
        node = shutil.which("node")
        if node is None or not SERVER.exists():
            raise RuntimeError("web-push-testing missing: run scripts/bootstrap.sh (npm ci)")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [node, "-e", _LOOPBACK, str(SERVER), str(self.port)], cwd=self.log_path.parent,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        wait_until(lambda: httpx.post(f"{self.url}/status", timeout=1).status_code == 200,
                   20, "answering /status", "web-push-testing", self.proc, self.log_path)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def _post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        response = httpx.post(f"{self.url}{path}", json=body or {}, timeout=10)
        assert response.status_code == 200, response.text
        return response

    def subscribe(self, application_server_key: str) -> dict[str, Any]:
        """A subscription (``endpoint``, ``keys.p256dh``, ``keys.auth``, ``clientHash``)."""
        data = self._post("/subscribe", {"userVisibleOnly": "true",
                                         "applicationServerKey": application_server_key})
        return dict(data.json()["data"])

    def messages(self, client_hash: str) -> list[str]:
        """The decrypted payloads pushed to that subscription so far, oldest first."""
        data = self._post("/get-notifications", {"clientHash": client_hash}).json()["data"]
        return list(data["messages"])

    def expire(self, client_hash: str) -> None:
        """From now on, pushes to that subscription answer 410 Gone."""
        self._post(f"/expire-subscription/{client_hash}")
