"""/live in a real browser (Chromium via playwright) against the API under uvicorn:
sign in, a notification happens, it shows up live, mark it read, the count drops."""

from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import async_playwright, expect

from ece.settings import Settings
from tests.support.apitest import PASSWORD, register_and_login
from tests.support.notifytest import produce


async def test_live_page_shows_and_marks_notifications(
    live_url: str, settings: Settings, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=live_url, timeout=15) as client:
        me = await register_and_login(client)
    earlier = produce(settings, me.id, kind="card_received",
                      payload={"title": "You received Black Lotus"})
    origin = live_url.removesuffix("/api/v1")
    errors: list[str] = []

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium",
                                          args=["--no-sandbox"])
        page = await browser.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            await page.goto(f"{origin}/live")  # redirects to /live/
            assert page.url.endswith("/live/")
            await page.fill("#login", me.username)
            await page.fill("#password", PASSWORD)
            await page.click("#login-form button[type=submit]")

            items = page.locator("#notifications li")
            await expect(items).to_have_count(1)
            await expect(page.locator("#unread")).to_have_text("1")
            await expect(page.locator("#status")).to_have_text("live")

            # A notification happens while the page is open: it arrives over /ws.
            fresh: Any = produce(settings, me.id, kind="listing_sold",
                                 payload={"title": "Your Black Lotus sold for $12.34"})
            newest = items.first
            await expect(newest).to_contain_text("Your Black Lotus sold for $12.34",
                                                 timeout=5000)
            assert await newest.get_attribute("data-seq") == str(fresh.seq)
            await expect(items).to_have_count(2)
            await expect(page.locator("#unread")).to_have_text("2")

            await newest.locator("button.mark-read").click()
            await expect(page.locator("#unread")).to_have_text("1")
            await expect(newest.locator("button.mark-read")).to_have_count(0)

            await page.click("#read-all")
            await expect(page.locator("#unread")).to_have_text("0")
            older = page.locator(f'#notifications li[data-id="{earlier.id}"]')
            await expect(older).to_have_class("read")

            shot = tmp_path / "live_page.png"
            await page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
        finally:
            await browser.close()
    assert errors == []

    async with httpx.AsyncClient(base_url=live_url, timeout=15) as client:
        r = await client.get("/notifications/unread-count", headers=me.auth)
        assert r.json() == {"unread": 0}  # the page's clicks reached the API
        sw = await client.get(f"{origin}/live/sw.js")
        assert sw.status_code == 200 and "javascript" in sw.headers["content-type"]
