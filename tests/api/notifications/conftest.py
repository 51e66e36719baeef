"""Notification tests talk to the API under real uvicorn (the stack's ``api`` part)."""

from collections.abc import AsyncIterator

import httpx
import pytest


@pytest.fixture
async def live(live_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_url, timeout=15) as client:
        yield client


@pytest.fixture
def ws_base(live_url: str) -> str:
    return live_url.replace("http://", "ws://", 1) + "/ws"
