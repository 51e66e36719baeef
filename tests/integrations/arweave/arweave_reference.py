"""Independent answers for the Arweave tests: arweave-js run by node, plus payloads.

The Python client is only trustworthy if it agrees with the implementation the
network's gateways were built against, so tests ask arweave-js (installed with
arlocal by ``npm ci``) for deep hashes, data roots, proofs and signatures.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ece.settings import REPO_ROOT

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "js_reference.js"
VECTORS = HERE / "vectors.json"


def payload(size: int, seed: str = "ece") -> bytes:
    """Deterministic bytes without repeats (a SHA-256 counter stream).

    Non-repeating matters: arlocal de-duplicates identical chunks when serving data,
    so a repetitive payload would not round-trip through the gateway.
    """
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def js(requests: list[dict[str, Any]]) -> list[Any]:
    """Run a batch of requests through ``js_reference.js`` (one node process)."""
    node = shutil.which("node")
    if node is None or not (REPO_ROOT / "node_modules" / "arweave").exists():
        pytest.fail(f"arweave-js is missing: cd {REPO_ROOT} && npm ci --no-audit --no-fund")
    done = subprocess.run(
        [node, str(SCRIPT)],
        input=json.dumps(requests).encode(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"js_reference.js failed: {done.stderr.decode()[-2000:]}")
    answers: list[Any] = json.loads(done.stdout)
    return answers


def vectors() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(VECTORS.read_text())
    return loaded
