"""TLS end to end: `ece tls init`, the API over HTTPS (TLS 1.3 only), PostgreSQL with
``ssl=on`` and the app on ``sslmode=verify-full``, and prod refusing plain HTTP.

The stack here is its own (postgres, migrate, redis, api on free ports, a temporary
data folder), started by the same Platform code as `make up`, with the environment
lines `ece tls init` printed.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cryptography import x509

from ece.settings import Settings
from ops.stack.api import Api, require_transport
from ops.stack.base import port_open
from ops.stack.supervisor import Platform, free_port_environment

PATH = {"PATH": "/usr/bin:/bin"}


def _ece(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ops", *args], capture_output=True, text=True,
                          timeout=180, check=False,
                          env={**PATH, "ECE_ENV": "test", "ECE_DATA_DIR": str(data_dir)})


def _exported(output: str) -> dict[str, str]:
    """The ``export ECE_...=...`` lines `ece tls init` prints, as a mapping."""
    pairs = (line.strip().removeprefix("export ").split("=", 1)
             for line in output.splitlines() if line.strip().startswith("export ECE_"))
    return dict(pairs)


def _settings(environment: dict[str, str]) -> Settings:
    values: dict[str, Any] = {k.removeprefix("ECE_").lower(): v for k, v in environment.items()}
    return Settings(**values)


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="ece-tls-"))
    folder.chmod(0o755)  # the postgres OS user must traverse it
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_env(data_dir: Path) -> dict[str, str]:
    done = _ece(data_dir, "tls", "init")
    assert done.returncode == 0, done.stderr
    return _exported(done.stdout)


@pytest.fixture(scope="module")
def stack(data_dir: Path, tls_env: dict[str, str]) -> Iterator[Platform]:
    settings = _settings({"ECE_ENV": "test", "ECE_DATA_DIR": str(data_dir),
                          **free_port_environment(), **tls_env})
    platform = Platform(settings, progress=lambda msg: print(f"[stack] {msg}", flush=True))
    try:
        platform.require("api")
        yield platform
    finally:
        platform.stop()


def _ca_context(ca: str, *, tls12_only: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca)
    if tls12_only:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


def test_tls_init_makes_a_ca_and_a_server_certificate_and_keeps_the_ca(
        data_dir: Path, tls_env: dict[str, str]) -> None:
    assert set(tls_env) == {"ECE_TLS_CERT", "ECE_TLS_KEY", "ECE_TLS_CA"}
    ca = x509.load_pem_x509_certificate(Path(tls_env["ECE_TLS_CA"]).read_bytes())
    cert = x509.load_pem_x509_certificate(Path(tls_env["ECE_TLS_CERT"]).read_bytes())
    cert.verify_directly_issued_by(ca)  # raises unless the CA signed it
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    tls_dir = data_dir / "secrets" / "tls"
    for key in ("ca.key", "server.key"):
        assert (tls_dir / key).stat().st_mode & 0o777 == 0o600

    ca_before = (tls_dir / "ca.crt").read_bytes(), (tls_dir / "ca.key").read_bytes()
    again = _ece(data_dir, "tls", "init")
    assert again.returncode == 0, again.stderr
    assert "(kept)" in again.stdout.splitlines()[0], again.stdout
    assert _exported(again.stdout) == tls_env
    assert ((tls_dir / "ca.crt").read_bytes(), (tls_dir / "ca.key").read_bytes()) == ca_before


def test_the_api_serves_https_that_the_ca_verifies(
        stack: Platform, tls_env: dict[str, str]) -> None:
    url = str(stack.part("api").url)
    assert url.startswith("https://127.0.0.1:")
    response = httpx.get(f"{url}/healthz", verify=_ca_context(tls_env["ECE_TLS_CA"]), timeout=10)
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{url}/healthz", timeout=10)  # the system CAs do not know the local CA
    port = stack.settings.api_port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            _ca_context(tls_env["ECE_TLS_CA"]).wrap_socket(raw, server_hostname="127.0.0.1") as s:
        assert s.version() == "TLSv1.3"


def test_a_client_limited_to_tls_1_2_is_refused(stack: Platform, tls_env: dict[str, str]) -> None:
    url = str(stack.part("api").url)
    with pytest.raises(httpx.ConnectError) as refused:
        httpx.get(f"{url}/healthz", verify=_ca_context(tls_env["ECE_TLS_CA"], tls12_only=True),
                  timeout=10)
    # The handshake fails (the server drops it; no HTTP is exchanged) ...
    assert "[SSL" in str(refused.value), refused.value
    # ... while the same client allowed TLS 1.3 gets its answer: only the version was wrong.
    ok = httpx.get(f"{url}/healthz", verify=_ca_context(tls_env["ECE_TLS_CA"]), timeout=10)
    assert ok.status_code == 200


def test_plain_http_to_the_tls_port_fails(stack: Platform) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{stack.settings.api_port}/api/v1/healthz", timeout=10)


def test_postgres_runs_ssl_and_the_app_connects_verify_full(
        stack: Platform, tls_env: dict[str, str], tmp_path: Path) -> None:
    settings = stack.settings
    assert "sslmode=verify-full" in settings.database_url
    assert f"sslrootcert={tls_env['ECE_TLS_CA']}" in settings.database_url
    # autocommit: a transaction would keep its first snapshot of pg_stat_activity.
    with psycopg.connect(settings.database_url, connect_timeout=10, autocommit=True) as conn:
        ssl_on, version = conn.execute(
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() or ()
        assert (ssl_on, version) == (True, "TLSv1.3")

        # The API's own pool (readiness opens it): every connection of it is TLS.
        ready = httpx.get(f"{stack.part('api').url}/readyz",
                          verify=_ca_context(tls_env["ECE_TLS_CA"]), timeout=30)
        assert ready.json()["checks"]["database"] == "ok", ready.text
        others = conn.execute(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
            "WHERE a.datname = %s AND a.backend_type = 'client backend' "
            "AND a.pid <> pg_backend_pid()", (settings.db_name,)).fetchall()
        assert others and all(row[0] for row in others), others

    # verify-full really verifies: another CA's view of the same server is refused.
    other = _ece(tmp_path, "tls", "init")
    wrong_ca = _exported(other.stdout)["ECE_TLS_CA"]
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(settings.database_url.replace(tls_env["ECE_TLS_CA"], wrong_ca),
                        connect_timeout=10)


def test_prod_without_tls_or_a_trusted_proxy_refuses_to_start(tmp_path: Path) -> None:
    prod = _settings({"ECE_ENV": "prod", "ECE_DATA_DIR": str(tmp_path),
                      "ECE_SIWS_DOMAIN": "cards.example.com", **free_port_environment()})
    done = subprocess.run([sys.executable, "-m", "ops.stack.api"], capture_output=True,
                          text=True, timeout=120, check=False,
                          env={**PATH, **prod.as_environment()})
    assert done.returncode != 0
    assert "prod refuses to serve plain HTTP" in done.stderr, done.stderr
    assert "ECE_TLS_CERT" in done.stderr and "ECE_TRUSTED_PROXIES" in done.stderr
    assert not port_open("127.0.0.1", prod.api_port)
    with pytest.raises(RuntimeError, match="prod refuses to serve plain HTTP"):
        Api(prod).start()
    # Either way out is accepted: a trusted proxy terminating TLS, or TLS here.
    require_transport(prod.model_copy(update={"trusted_proxies": "10.0.0.5"}))
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    require_transport(prod.model_copy(update={"tls_cert": cert, "tls_key": cert}))
