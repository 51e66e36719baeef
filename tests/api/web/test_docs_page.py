"""The interactive API docs render in a real browser, with no internet.

Debian's ``chromium`` (``scripts/bootstrap.sh`` installs it) driven by Playwright
against the API as the stack runs it (uvicorn, ``platform.require("api")``). Every
request that leaves the API's own address is aborted and fails the test, so a page
that still needs a CDN, or whose local assets are missing, cannot pass.
"""

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Page, Request, Route, async_playwright

CHROMIUM = os.environ.get("ECE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
SCREENSHOTS = Path(os.environ.get("ECE_SCREENSHOT_DIR", "/tmp"))
# ReDoc's sidebar footer always tries this logo and hides it when it does not load:
# cosmetic, so it is aborted like any outside request but does not fail the test.
COSMETIC = {"https://cdn.redoc.ly/redoc/logo-mini.svg"}


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/bootstrap.sh (apt-get chromium)")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        await b.close()


class OfflinePage:
    """A page that may only talk to the API; records what it asked for and what failed."""

    def __init__(self, page: Page, origin: str) -> None:
        self.page = page
        self.origin = origin
        self.outside: list[str] = []
        self.failed: list[str] = []
        self.errors: list[str] = []
        page.on("requestfailed", self._on_failed)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("response", self._on_response)

    async def install(self) -> None:
        await self.page.route("**/*", self._route)

    async def _route(self, route: Route, request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob") or f"{parts.scheme}://{parts.netloc}" == self.origin:
            await route.continue_()
        else:
            if request.url not in COSMETIC:
                self.outside.append(request.url)
            await route.abort()

    def _on_failed(self, request: Request) -> None:
        parts = urlsplit(request.url)
        if f"{parts.scheme}://{parts.netloc}" == self.origin:
            self.failed.append(request.url)

    def _on_response(self, response: object) -> None:
        status = getattr(response, "status", 200)
        if status >= 400:
            self.failed.append(f"{status} {getattr(response, 'url', '?')}")

    def assert_clean(self) -> None:
        assert not self.outside, f"the page reached outside the API: {self.outside}"
        assert not self.failed, f"requests failed: {self.failed}"
        assert not self.errors, f"script errors: {self.errors}"


async def _open(browser: Browser, url: str, origin: str) -> OfflinePage:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    offline = OfflinePage(page, origin)
    await offline.install()
    response = await page.goto(url, wait_until="domcontentloaded")
    assert response is not None and response.status == 200
    return offline


def _origin(live_url: str) -> str:
    parts = urlsplit(live_url)
    return f"{parts.scheme}://{parts.netloc}"


async def test_docs_assets_are_served_locally(live_url: str) -> None:
    origin = _origin(live_url)
    async with httpx.AsyncClient(base_url=origin, timeout=10) as http:
        html = (await http.get("/api/v1/docs")).text
        assert "cdn." not in html and "/api/v1/docs/assets/swagger-ui-bundle.js" in html
        redoc = (await http.get("/api/v1/redoc")).text
        assert "cdn." not in redoc and "fonts.googleapis" not in redoc
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
            r = await http.get(f"/api/v1/docs/assets/{asset}")
            assert r.status_code == 200 and len(r.content) > 10_000, asset


async def test_swagger_ui_lists_the_operations(browser: Browser, live_url: str) -> None:
    origin = _origin(live_url)
    offline = await _open(browser, f"{origin}/api/v1/docs", origin)
    page = offline.page
    cards = page.locator('.opblock[id^="operations-"]', has_text="/api/v1/cards")
    await cards.first.wait_for(state="visible", timeout=30_000)
    assert await page.locator(".opblock").count() >= 20
    assert await page.locator(".opblock-summary-path", has_text="/api/v1/cards").count() >= 2
    assert "ECE" in await page.locator(".info .title").inner_text()
    await page.screenshot(path=str(SCREENSHOTS / "ece-swagger-ui.png"), full_page=False)
    # Expanding an operation shows its parameters and responses (the UI really works).
    await page.locator(".opblock-get .opblock-summary", has_text="/api/v1/cards").first.click()
    await page.locator(".opblock-get .parameters").first.wait_for(timeout=10_000)
    await page.screenshot(path=str(SCREENSHOTS / "ece-swagger-ui-operation.png"))
    offline.assert_clean()
    await page.close()


async def test_redoc_renders(browser: Browser, live_url: str) -> None:
    origin = _origin(live_url)
    offline = await _open(browser, f"{origin}/api/v1/redoc", origin)
    page = offline.page
    await page.locator("h1", has_text="ECE").first.wait_for(state="visible", timeout=30_000)
    await page.locator("h2", has_text="/cards").or_(
        page.locator("[data-section-id^='tag/']")
    ).first.wait_for(timeout=30_000)
    assert await page.locator("[data-section-id^='operation/']").count() >= 20
    await page.screenshot(path=str(SCREENSHOTS / "ece-redoc.png"), full_page=False)
    offline.assert_clean()
    await page.close()
