"""Solana: the local JSON-RPC node (``python -m ops.localchain``) over LiteSVM.

No validator can be installed here, so the part runs our own node; setting
``ECE_SOLANA_RPC_URL`` points every process at a real cluster instead (devnet,
a provider) and this part then only health-checks it.
"""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

import httpx

from ops.stack.base import ManagedProcess, Part, wait_until


class Solana(Part):
    name = "solana"

    @property
    def url(self) -> str:
        return self.settings.solana_rpc_url

    @property
    def port(self) -> int:
        return urlsplit(self.settings.solana_rpc_url).port or 8899

    def start(self) -> None:
        if self.external:
            return
        argv = [sys.executable, "-m", "ops.localchain", "--port", str(self.port),
                "--data-dir", str(self.settings.data_dir)]
        # SIGTERM makes the node save its state; give a large state time to be written.
        self.process = ManagedProcess(self.name, argv, self.log_path, stop_timeout=60)
        proc = self.process.start()
        wait_until(lambda: self.health()[0], 30, "getHealth answering ok", self.name, proc,
                   self.log_path, fix=f"is port {self.port} free? see the log")

    def health(self) -> tuple[bool, str]:
        """Healthy when getHealth answers "ok" (what validators and providers answer)."""
        try:
            resp = httpx.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": "getHealth"},
                              timeout=2)
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            return False, f"{self.url}: {exc}"
        if body.get("result") == "ok":
            return True, self.url
        return False, f"{self.url}: {body.get('error') or body}"
