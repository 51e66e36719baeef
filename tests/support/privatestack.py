"""A platform of its own for a test module: every part on free ports, in a fresh data dir.

For tests whose verdict covers the whole state of a store (``ece check`` compares every
row of Postgres with the lake, Redis and the chain): on the session's shared platform,
what other tests planted on purpose would be reported too.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ece.settings import Settings
from ops.stack.supervisor import Platform, free_port_environment


@contextmanager
def private_platform(label: str, *parts: str) -> Iterator[Platform]:
    """Start ``parts`` (and what they need) on a private stack; stop and delete it after."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"ece-test-{label}-"))
    data_dir.chmod(0o755)
    environment = {**free_port_environment(), "ECE_ENV": "test", "ECE_DATA_DIR": str(data_dir),
                   "ECE_DB_PASSFILE_DIR": str(data_dir / "secrets")}
    fields = {key.removeprefix("ECE_").lower(): value for key, value in environment.items()}
    platform = Platform(Settings(**fields),
                        progress=lambda msg: print(f"[{label} stack] {msg}", flush=True))
    try:
        platform.require(*parts)
        yield platform
    finally:
        platform.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
