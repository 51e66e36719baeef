"""The Arweave gateway: arlocal (npm) on 127.0.0.1, for NFT metadata storage.

arlocal validates signatures, data roots and anchors like a real gateway, so the
Python client in ``api.integrations.arweave`` is tested against real checks without touching
mainnet. We start it through ``ops/stack/arlocal_server.js`` rather than
``npx arlocal`` because arlocal's CLI listens on every interface and never mines;
the launcher binds to the configured host, keeps its sqlite database under
``<data_dir>/arweave/db`` (kept across restarts) and mines a block every
``mine_interval_ms`` while something is pending, so uploads confirm on their own the
way they do on Arweave.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx

from ece.settings import REPO_ROOT
from ops.stack.base import ManagedProcess, Part, PartFailed, port_open, require_binary, wait_until

LAUNCHER = Path(__file__).with_name("arlocal_server.js")
NODE_MODULES = REPO_ROOT / "node_modules"
NPM_FIX = f"cd {REPO_ROOT} && npm ci --no-audit --no-fund"


class Arweave(Part):
    name = "arweave"
    mine_interval_ms = 1000  # 0 turns automatic mining off (then call GET /mine yourself)
    start_timeout = 90.0  # arlocal takes ~4 s idle, much longer on a loaded machine

    @property
    def url(self) -> str:
        return self.settings.arweave_url.rstrip("/")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 1984

    @property
    def folder(self) -> Path:
        return self.settings.data_dir / "arweave"

    def _check_installed(self) -> None:
        """Fail with the fix before spawning: node's own error would be a stack trace."""
        if not (NODE_MODULES / "arlocal" / "bin" / "app.js").exists():
            raise PartFailed(self.name, f"arlocal is not installed ({NODE_MODULES} is missing it)",
                             NPM_FIX)
        if not (NODE_MODULES / "sqlite3" / "build" / "Release" / "node_sqlite3.node").exists():
            raise PartFailed(self.name, "sqlite3's native module was not built "
                             "(npm install scripts skipped?)", NPM_FIX)

    def start(self) -> None:
        if self.external:
            return
        node = require_binary(self.name, "node", "apt-get install -y nodejs (node >= 18)")
        self._check_installed()
        if port_open(self.host, self.port):
            raise PartFailed(self.name, f"{self.host}:{self.port} is already in use",
                             "stop what listens there or set ECE_ARWEAVE_URL to use it")
        self.folder.mkdir(parents=True, exist_ok=True)
        argv = [node, str(LAUNCHER), "--host", self.host, "--port", str(self.port),
                "--dbpath", str(self.folder / "db"),
                "--mine-interval-ms", str(self.mine_interval_ms),
                # arlocal echoes every posted transaction (data included) to stdout; its
                # validation errors still reach the log, the request lines go to db/../logs.
                "--quiet"]
        self.process = ManagedProcess(self.name, argv, self.log_path, cwd=self.folder)
        proc = self.process.start()
        wait_until(self._answers, self.start_timeout, "GET /info answering", self.name, proc,
                   self.log_path, NPM_FIX)

    def _answers(self) -> bool:
        response = httpx.get(f"{self.url}/info", timeout=2)
        return response.status_code == 200 and "network" in response.json()

    def health(self) -> tuple[bool, str]:
        try:
            response = httpx.get(f"{self.url}/info", timeout=2)
            if response.status_code != 200:
                return False, f"/info {response.status_code}: {response.text[:200]}"
            info = response.json()
            return True, f"{self.url} {info.get('network')} height {info.get('height')}"
        except (httpx.HTTPError, ValueError) as exc:
            return False, f"{self.url}: {exc}"
