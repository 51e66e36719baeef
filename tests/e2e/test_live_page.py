"""/live in a real browser (Chromium via playwright) against the whole stack: the
seller signs in, a card is issued to them and sold, and each notification (made by
CDC, Flink and the delivery worker from those REST writes) shows up live; mark it
read, the count drops. The screenshot is saved as a test artifact."""

from pathlib import Path

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from ece.settings import REPO_ROOT
from ops.stack.supervisor import Platform
from tests.support.apitest import PASSWORD, Account, register_and_login, relogin, unique

pytestmark = pytest.mark.e2e

PIPELINE_MS = 60_000


@pytest.fixture
def artifacts() -> Path:
    """Where the screenshot stays after the run (git-ignored data/)."""
    folder = REPO_ROOT / "data" / "test-artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def _notification_ids(client: httpx.AsyncClient, account: Account) -> list[str]:
    r = await client.get("/notifications", headers=account.auth)
    assert r.status_code == 200, r.text
    return [n["id"] for n in r.json()["items"]]


async def test_live_page_shows_and_marks_notifications(
    platform: Platform, admin: Account, artifacts: Path
) -> None:
    platform.require("api", "cdc", "flink", "delivery")
    live_url = platform.part("api").url
    async with httpx.AsyncClient(base_url=live_url, timeout=15) as client:
        admin = await relogin(client, admin)  # the session's token may have expired
        me, buyer = await register_and_login(client), await register_and_login(client)
        r = await client.post("/admin/deposits", headers=admin.auth, json={
            "user_id": buyer.id, "amount_cents": 5_000, "reference": unique("dep")})
        assert r.status_code == 201, r.text
        r = await client.post("/cards", headers=admin.auth, json={
            "name": "Black Lotus", "set_name": "Alpha", "number": unique("n")[:10],
            "rarity": "legendary", "owner_id": me.id})
        assert r.status_code == 201, r.text
        card_id = r.json()["id"]
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

            # The card issued to the seller: card_received, through the whole pipeline.
            items = page.locator("#notifications li")
            await expect(items).to_have_count(1, timeout=PIPELINE_MS)
            await expect(page.locator("#unread")).to_have_text("1")
            await expect(page.locator("#status")).to_have_text("live")

            # A sale happens while the page is open: listing_sold arrives over /ws.
            async with httpx.AsyncClient(base_url=live_url, timeout=15) as client:
                (earlier,) = await _notification_ids(client, me)
                r = await client.post("/listings", headers=me.auth,
                                      json={"card_id": card_id, "price_cents": 1_234})
                assert r.status_code == 201, r.text
                r = await client.post(f"/listings/{r.json()['id']}/purchase",
                                      headers=buyer.auth)
                assert r.status_code == 201, r.text
            newest = items.first
            await expect(newest).to_contain_text("sold", timeout=PIPELINE_MS)
            await expect(newest).to_contain_text("$12.34")
            assert await newest.get_attribute("data-seq") == "2"
            await expect(items).to_have_count(2)
            await expect(page.locator("#unread")).to_have_text("2")

            await newest.locator("button.mark-read").click()
            await expect(page.locator("#unread")).to_have_text("1")
            await expect(newest.locator("button.mark-read")).to_have_count(0)

            await page.click("#read-all")
            await expect(page.locator("#unread")).to_have_text("0")
            older = page.locator(f'#notifications li[data-id="{earlier}"]')
            await expect(older).to_have_class("read")

            shot = artifacts / "live_page.png"
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
