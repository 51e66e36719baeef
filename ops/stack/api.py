"""The REST API under uvicorn.

Client addresses (rate-limit buckets, audit IPs) are the TCP peer. uvicorn's own
default trusts ``X-Forwarded-For`` from loopback, so anything on the host (or a
client, through a local port-forward) could pick its address; here only the
proxies in ``ECE_TRUSTED_PROXIES`` (IPs or CIDRs, comma-separated; none by
default) are believed, and with none the proxy headers are ignored altogether.
"""

from __future__ import annotations

import ipaddress
import sys
from typing import Any

import httpx

from api.wallets.siws import require_domain
from ece.settings import Settings
from ops.stack.base import ManagedProcess, Part, wait_until


def trusted_proxies(settings: Settings) -> list[str]:
    """``ECE_TRUSTED_PROXIES`` as a list; refuses entries that are not IPs or networks."""
    entries = [p.strip() for p in settings.trusted_proxies.split(",") if p.strip()]
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(
                f"ECE_TRUSTED_PROXIES: {entry!r} is not an IP address or network"
            ) from None
    return entries


def proxy_options(settings: Settings) -> dict[str, Any]:
    """``uvicorn.Config`` keywords for the proxy headers (the CLI flags below say the same)."""
    trusted = trusted_proxies(settings)
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": ",".join(trusted)}


def proxy_args(settings: Settings) -> list[str]:
    options = proxy_options(settings)
    if not options["proxy_headers"]:
        return ["--no-proxy-headers"]
    return ["--proxy-headers", "--forwarded-allow-ips", options["forwarded_allow_ips"]]


class Api(Part):
    name = "api"
    depends_on = ("migrate", "redis")

    @property
    def url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}/api/v1"

    def start(self) -> None:
        require_domain(self.settings)  # prod: ECE_SIWS_DOMAIN, before anything starts
        argv = [sys.executable, "-m", "uvicorn", "api.web.app:create_app", "--factory",
                "--host", self.settings.api_host, "--port", str(self.settings.api_port),
                "--workers", str(self.settings.api_workers), "--no-access-log",
                "--timeout-graceful-shutdown", "10", *proxy_args(self.settings)]
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
