"""Headless Chromium for browser tests, and the folder their screenshots stay in.

Playwright cannot download its own browsers here, so tests drive Debian's
``chromium`` (``scripts/bootstrap.sh`` installs it) through ``executable_path``
with ``--no-sandbox`` (the suite may run as root). Screenshots go to
``data/test-artifacts`` (git-ignored), the folder tests/e2e/test_live_page.py uses,
so they outlive the test's temporary data folder.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from ece.settings import REPO_ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()


def artifacts_dir() -> Path:
    """Where screenshots stay after the run (git-ignored ``data/``)."""
    folder = REPO_ROOT / "data" / "test-artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless; fails the test (not skips) when it is missing."""
    if not HAVE_CHROMIUM:
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/bootstrap.sh (apt-get chromium)")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=["--no-sandbox"])
        try:
            yield browser
        finally:
            await browser.close()
