"""`ece tls init`: a local certificate authority and a server certificate for loopback.

Development and single-host deployments need HTTPS (and TLS to PostgreSQL) without
a public CA: this makes one under ``data/secrets/tls/`` and issues a certificate for
127.0.0.1, ::1 and localhost (plus the configured API and database hosts). Keys
are written by :func:`ece.private_files.write_private` (mode 0600, atomic). A second
run keeps the CA, so clients that already trust ``ca.crt`` keep trusting the server;
the server certificate is issued again only when it is missing, expiring, or no
longer matches the CA or the host names.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ece.private_files import write_private
from ece.settings import Settings, get_settings

if TYPE_CHECKING:  # imported where used: `ece --help` must not load cryptography
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec


tls_app = typer.Typer(no_args_is_help=True,
                      help="A local CA and server certificate for HTTPS and PostgreSQL TLS.")

CA_DAYS = 3650
SERVER_DAYS = 397  # the longest validity browsers accept for a server certificate
RENEW_BEFORE = timedelta(days=30)
LOOPBACK = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsFiles:
    """Where ``ece tls init`` keeps the CA and the server certificate."""

    folder: Path

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def cert(self) -> Path:
        return self.folder / "server.crt"

    @property
    def key(self) -> Path:
        return self.folder / "server.key"

    def env_lines(self) -> list[str]:
        return [f"ECE_TLS_CERT={self.cert}", f"ECE_TLS_KEY={self.key}",
                f"ECE_TLS_CA={self.ca_cert}"]


def tls_files(settings: Settings) -> TlsFiles:
    return TlsFiles(settings.secrets_dir / "tls")


def host_names(settings: Settings) -> list[str]:
    """Loopback plus the hosts the API and the database are reached at."""
    names = list(LOOPBACK)
    for host in (settings.api_host, settings.db_host):
        if host and host not in names and host not in ("0.0.0.0", "::"):
            names.append(host)
    return names


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_ca(files: TlsFiles) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    """The existing CA, when both halves are there and belong together."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if not (files.ca_cert.exists() and files.ca_key.exists()):
        return None
    cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        return None
    return cert, key


def _new_ca(files: TlsFiles) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ECE local CA")])
    now = datetime.now(UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    # The key first: a crash in between leaves no certificate, so the next run starts over.
    write_private(files.ca_key, _pem_key(key), replace=True)
    write_private(files.ca_cert, cert.public_bytes(serialization.Encoding.PEM), replace=True)
    return cert, key


def _alt_names(names: list[str]) -> list[x509.GeneralName]:
    from cryptography import x509

    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def _server_is_current(files: TlsFiles, ca: x509.Certificate, names: list[str]) -> bool:
    """The server certificate can stay: issued by this CA, for these names, not expiring."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization

    if not (files.cert.exists() and files.key.exists()):
        return False
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (key.public_key() == cert.public_key() and set(san) == set(_alt_names(names))
            and cert.not_valid_after_utc - datetime.now(UTC) > RENEW_BEFORE)


def _issue_server(files: TlsFiles, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
                  names: list[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=SERVER_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(_alt_names(names)), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    write_private(files.key, _pem_key(key), replace=True)
    write_private(files.cert, cert.public_bytes(serialization.Encoding.PEM), replace=True)


def init_tls(settings: Settings) -> tuple[TlsFiles, bool, bool]:
    """Make (or keep) the CA and the server certificate; (files, ca_made, cert_issued)."""
    files = tls_files(settings)
    names = host_names(settings)
    loaded = _load_ca(files)
    ca_made = loaded is None
    ca, ca_key = loaded or _new_ca(files)
    issued = ca_made or not _server_is_current(files, ca, names)
    if issued:
        _issue_server(files, ca, ca_key, names)
    return files, ca_made, issued


@tls_app.command("init")
def init() -> None:
    """Create a local CA and a server certificate under data/secrets/tls (kept if present)."""
    settings = get_settings()
    files, ca_made, issued = init_tls(settings)
    typer.echo(f"CA: {files.ca_cert} ({'created' if ca_made else 'kept'})")
    typer.echo(f"server certificate: {files.cert} ({'issued' if issued else 'kept'}) "
               f"for {', '.join(host_names(settings))}")
    typer.echo("Use it (API over HTTPS, TLS 1.3; PostgreSQL ssl=on, sslmode=verify-full):")
    for line in files.env_lines():
        typer.echo(f"  export {line}")
