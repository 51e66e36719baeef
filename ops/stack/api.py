"""The REST API under uvicorn."""

from __future__ import annotations

import sys

import httpx

from ops.stack.base import ManagedProcess, Part, wait_until


class Api(Part):
    name = "api"
    depends_on = ("migrate", "redis")

    @property
    def url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}/api/v1"

    def start(self) -> None:
        argv = [sys.executable, "-m", "uvicorn", "api.web.app:create_app", "--factory",
                "--host", self.settings.api_host, "--port", str(self.settings.api_port),
                "--workers", str(self.settings.api_workers), "--no-access-log",
                "--timeout-graceful-shutdown", "10"]
        self.process = ManagedProcess(self.name, argv, self.log_path,
                                      env=self.child_environment())
        proc = self.process.start()
        wait_until(self._alive, 60, "GET /healthz answering", self.name, proc, self.log_path)

    def _alive(self) -> bool:
        return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200

    def health(self) -> tuple[bool, str]:
        try:
            response = httpx.get(f"{self.url}/readyz", timeout=2)
            if response.status_code == 200:
                return True, self.url
            return False, f"/readyz {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            return False, f"{self.url}: {exc}"
