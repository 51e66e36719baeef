"""The Dagster UI in a real browser: the gold marts, their daily partitions and their checks.

The lake is fed three days of market activity. An operator refreshes (``ece
warehouse refresh --checks``: lands, rebuilds silver and today's gold, runs every
quality suite), starts the platform's Dagster part (code server, UI, daemon)
and backfills three dates (``ece warehouse backfill``), both recorded in the
instance, then opens the UI in Chromium: the gold group lists the six marts; a
mart's partitions tab counts every daily partition since 2026-01-01 and shows
the four built ones; its checks tab names the great-expectations checks and the
freshness check with their outcomes. The screenshot is saved as a test artifact.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from cdcfeed import Feed
from playwright.async_api import Page, expect
from test_partitions import DAYS, KEYS, _market

from ece.settings import Settings
from ops.stack.dagster import Dagster
from orchestration.assets.gold_partitions import GOLD_START
from quality.registry import SUITES
from tests.support.browser import artifacts_dir, chromium
from tests.support.dagstertest import dagster_part, ece, graphql, quiesce, refresh_recorded

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

UI_MS = 120_000  # the UI's first queries load the code location's snapshot: slow when loaded
PARTITIONS = (datetime.now(UTC).date() - GOLD_START).days + 1  # end_offset=1: today's too
BUILT = len(DAYS) + 1  # the backfilled dates and today's (the refresh)
MISSING = PARTITIONS - BUILT
MART = "daily_market_summary"
# A gold row of the group's list: "<materialized> <missing> <failed> <n> 335 partitions"
ROW_STATUS = re.compile(rf"(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+{PARTITIONS} partitions")
LOCATION = """
{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }
"""


@pytest.fixture
def refreshed(lake_settings: Settings, feed: Feed) -> Iterator[Dagster]:
    """The Dagster part after a refresh with checks and a backfill of the three dates."""
    _market(feed)
    refresh_recorded(lake_settings, "--checks")
    with dagster_part(lake_settings) as part:
        quiesce(part.url)  # the runs below are the operator's; no sensor run beside them
        out = ece("warehouse", "backfill", "--from", DAYS[0].isoformat(),
                  "--to", DAYS[-1].isoformat())
        assert "backfill succeeded" in out, out
        yield part


def _check_names(table: str) -> list[str]:
    suite = next(s for s in SUITES if s.layer == "gold" and s.name == table)
    return [c.name for c in suite.checks()]


def _group_list_path(url: str) -> str:
    """The gold group's list view (``/locations/<repo>@<location>/asset-groups/gold/list``)."""
    (repo,) = graphql(url, LOCATION)["repositoriesOrError"]["nodes"]
    return f"/locations/{repo['name']}@{repo['location']['name']}/asset-groups/gold/list"


async def _group_list(page: Page, url: str) -> None:
    """Each mart is a row of the gold group, with its partitions' health."""
    await page.goto(url + _group_list_path(url))
    # the list is a virtualized table: a row is a div, not a <tr>
    rows = page.locator("[class*='VirtualizedTable_row__']")
    for table in KEYS:
        name = re.compile(rf"^gold \/ {table}( |$)")  # the link repeats its text (a tooltip)
        row = rows.filter(has=page.get_by_role("link", name=name))
        await expect(row).to_contain_text(f"{PARTITIONS} partitions", timeout=UI_MS)
        found = ROW_STATUS.search(await row.inner_text())
        assert found, await row.inner_text()
        materialized, missing, failed = (int(n) for n in found.groups())
        assert (materialized, missing, failed) == (BUILT, MISSING, 0), (table, found.group(0))
    await expect(rows.filter(has_text="gold / ")).to_have_count(len(KEYS))


async def _partitions(page: Page, url: str) -> None:
    await page.goto(f"{url}/assets/gold/{MART}?view=partitions")
    for text in (f"{PARTITIONS} Partitions Selected", f"Materialized ({BUILT})",
                 f"Missing ({MISSING})", "Failed (0)"):
        await expect(page.get_by_text(text, exact=True).first).to_be_visible(timeout=UI_MS)


async def _checks(page: Page, url: str) -> None:
    """Every check of the mart by name (its suite's and the freshness check), all passed."""
    names = [*_check_names(MART), "freshness_check"]
    await page.goto(f"{url}/assets/gold/{MART}?view=checks")
    await expect(page.get_by_text(f"Checks ({len(names)})", exact=True)).to_be_visible(
        timeout=UI_MS)
    body = page.locator("body")  # its text: "<name><name, the tooltip's>Succeeded" per check
    for name in names:
        await expect(body).to_contain_text(re.compile(rf"{name}\s*(?:{name}\s*)?Succeeded"),
                                           timeout=UI_MS)


async def test_dagster_ui_shows_gold_partitions_and_checks(refreshed: Dagster) -> None:
    url = refreshed.url
    errors: list[str] = []
    folder = artifacts_dir()
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1600, "height": 1000})
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await _group_list(page, url)
        await page.screenshot(path=str(folder / "dagster_ui.png"), full_page=True)
        await _partitions(page, url)
        await page.screenshot(path=str(folder / "dagster_ui_partitions.png"), full_page=True)
        await _checks(page, url)
        await page.screenshot(path=str(folder / "dagster_ui_checks.png"), full_page=True)
    print(f"screenshots: {folder}/dagster_ui*.png")
    assert errors == []
