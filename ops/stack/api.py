"""The REST API under uvicorn.

Client addresses (rate-limit buckets, audit IPs) are the TCP peer. uvicorn's own
default trusts ``X-Forwarded-For`` from loopback, so anything on the host (or a
client, through a local port-forward) could pick its address; here only the
proxies in ``ECE_TRUSTED_PROXIES`` (IPs or CIDRs, comma-separated; none by
default) are believed, and with none the proxy headers are ignored altogether.

With ``ECE_TLS_CERT``/``ECE_TLS_KEY`` uvicorn serves HTTPS, TLS 1.3 minimum. Its
command line can only pick an ``ssl.PROTOCOL_*`` constant (none means "1.3 or
newer"), so the part runs :func:`serve` (``python -m ops.stack.api``), which hands
uvicorn an SSL context factory raising ``minimum_version``. In prod, plain HTTP is
refused unless a trusted proxy terminates TLS in front (:func:`require_transport`).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import ssl
import sys
from collections.abc import Callable
from typing import Any

import httpx
import uvicorn

from api.oauth.providers import parse_providers
from api.wallets.siws import require_domain
from ece.settings import Settings, get_settings
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
    """The same as uvicorn command-line flags, for running ``uvicorn`` by hand."""
    options = proxy_options(settings)
    if not options["proxy_headers"]:
        return ["--no-proxy-headers"]
    return ["--proxy-headers", "--forwarded-allow-ips", options["forwarded_allow_ips"]]


def tls_enabled(settings: Settings) -> bool:
    """TLS is on when a certificate is configured (its key must come with it)."""
    return settings.tls_cert is not None


def require_transport(settings: Settings) -> None:
    """Refuse a configuration that would serve credentials in clear text, before anything starts.

    prod needs either TLS here or a trusted proxy (``ECE_TRUSTED_PROXIES``) that
    terminates it; a certificate without its key (or a missing file) is refused anywhere.
    """
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise RuntimeError("ECE_TLS_CERT and ECE_TLS_KEY must be set together")
    for name, path in (("ECE_TLS_CERT", settings.tls_cert), ("ECE_TLS_KEY", settings.tls_key),
                       ("ECE_TLS_CA", settings.tls_ca)):
        if path is not None and not path.is_file():
            raise RuntimeError(f"{name}: {path} is not a file (`ece tls init` makes local ones)")
    if settings.env == "prod" and not tls_enabled(settings) and not trusted_proxies(settings):
        raise RuntimeError(
            "prod refuses to serve plain HTTP: set ECE_TLS_CERT and ECE_TLS_KEY (HTTPS, "
            "TLS 1.3), or list the proxy that terminates TLS in ECE_TRUSTED_PROXIES")


def tls13_context(_config: uvicorn.Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's SSL context with TLS 1.2 and older refused (``ssl_context_factory``)."""
    context = default()
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


def tls_options(settings: Settings) -> dict[str, Any]:
    """``uvicorn.Config`` keywords for HTTPS (none when TLS is off)."""
    if not tls_enabled(settings):
        return {}
    return {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key),
            "ssl_context_factory": tls13_context}


def client_verify(settings: Settings) -> ssl.SSLContext | bool:
    """What a client of this API verifies it with: ECE_TLS_CA when set, else the system CAs."""
    if settings.tls_ca is not None:
        return ssl.create_default_context(cafile=str(settings.tls_ca))
    return True


def _share_metrics(settings: Settings) -> None:
    """Start the workers' shared Prometheus folder empty (a previous run's files would add
    its counts to ours) and name it to prometheus_client, which reads it at import in each
    worker (the one variable we set rather than read: it is the library's setting)."""
    folder = settings.api_metrics_dir
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


def serve() -> None:
    """The API process: uvicorn with these settings' address, proxy and TLS options."""
    settings = get_settings()
    try:
        require_transport(settings)
        parse_providers(settings)  # a bad sign-in provider list stops here, not at first use
    except RuntimeError as exc:
        sys.exit(f"api: {exc}")
    # Workers (ECE_API_WORKERS > 1) must answer uvicorn's health ping within
    # timeout_worker_healthcheck; its 5 s default is shorter than a spawned worker's
    # imports on a busy host, which then gets killed and respawned in a loop.
    if settings.api_workers > 1:
        _share_metrics(settings)
    uvicorn.run("api.web.app:create_app", factory=True, host=settings.api_host,
                port=settings.api_port, workers=settings.api_workers, access_log=False,
                timeout_graceful_shutdown=10, timeout_worker_healthcheck=60,
                **proxy_options(settings), **tls_options(settings))


# Until /healthz answers. Each worker process (ECE_API_WORKERS, 2 by default) imports
# the whole application before it serves; on a busy 2-core host that alone took 20 s
# and more per worker, so a minute was not always enough.
READY_SECONDS = 180


class Api(Part):
    name = "api"
    depends_on = ("migrate", "redis")

    @property
    def url(self) -> str:
        scheme = "https" if tls_enabled(self.settings) else "http"
        return f"{scheme}://{self.settings.api_host}:{self.settings.api_port}/api/v1"

    def start(self) -> None:
        require_domain(self.settings)  # prod: ECE_SIWS_DOMAIN, before anything starts
        require_transport(self.settings)  # prod: TLS here or a trusted proxy in front
        argv = [sys.executable, "-m", "ops.stack.api"]
        self.process = ManagedProcess(self.name, argv, self.log_path,
                                      env=self.child_environment())
        proc = self.process.start()
        try:
            wait_until(self._alive, READY_SECONDS, "GET /healthz answering", self.name, proc,
                       self.log_path)
        except BaseException:
            # Never started means never stopped by the supervisor: do not leave the
            # server and its workers behind.
            self.process.stop()
            raise

    def _alive(self) -> bool:
        verify = client_verify(self.settings)
        return httpx.get(f"{self.url}/healthz", timeout=2, verify=verify).status_code == 200

    def health(self) -> tuple[bool, str]:
        try:
            response = httpx.get(f"{self.url}/readyz", timeout=2,
                                 verify=client_verify(self.settings))
            if response.status_code == 200:
                return True, self.url
            return False, f"/readyz {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            return False, f"{self.url}: {exc}"


if __name__ == "__main__":
    # The importable copy: worker processes (ECE_API_WORKERS > 1) unpickle its functions.
    from ops.stack.api import serve as _serve

    _serve()
