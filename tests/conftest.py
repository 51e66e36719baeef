"""Session fixtures: the real platform, started by the same code as `make up`.

Every part runs on a free port with a temporary data folder, so the suite runs
beside a developer's `make up`. Parts start lazily: a test asks for what it needs
(``platform.require("cdc")``) and the session stops everything at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ece.settings import Settings, get_settings
from ops.stack.supervisor import Platform, free_port_environment

# The API fixtures (one plugin); helpers are imported as ``tests.support.<name>``.
pytest_plugins = ["tests.support.api_fixtures"]


def _test_environment(data_dir: Path) -> dict[str, str]:
    return {
        "ECE_ENV": "test",
        "ECE_DATA_DIR": str(data_dir),
        # Fixtures switch ECE_DATA_DIR per test: the roles' password file stays the session's.
        "ECE_DB_PASSFILE_DIR": str(data_dir / "secrets"),
        # Every test client shares 127.0.0.1: keep the per-IP limit out of unrelated tests
        # (the rate-limit tests set their own limits).
        "ECE_RATE_LIMIT_IP": "1000000",
        "ECE_WS_PING_SECONDS": "3",  # the ping test need not wait the default 20 s
        **free_port_environment(),
    }


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    data_dir = Path(tempfile.mkdtemp(prefix="ece-test-"))
    data_dir.chmod(0o755)
    saved = dict(os.environ)
    os.environ.update(_test_environment(data_dir))
    get_settings.cache_clear()
    plat = Platform(Settings(), progress=lambda msg: print(f"[stack] {msg}", flush=True))
    try:
        yield plat
    finally:
        plat.stop()
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(platform: Platform) -> Settings:
    return platform.settings
