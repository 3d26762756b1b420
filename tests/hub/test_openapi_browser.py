"""The /schema page in headless Chromium with every non-loopback request refused: Swagger UI
renders the hub's operations from assets the hub serves itself (before: a blank page
offline, its scripts and fonts came from a CDN)."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Route, async_playwright

from hub.app import create_app
from hub.settings import Settings
from tests.support import ThreadedServer

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Debian Chromium (never a downloaded browser)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (scripts/chromium.sh installs Debian's chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        await launched.close()


async def test_the_docs_page_renders_with_the_network_cut_off(
    settings: Settings, browser: Browser
) -> None:
    refused: list[str] = []

    async def offline(route: Route) -> None:
        if route.request.url.startswith("http://127.0.0.1:"):
            await route.continue_()
        else:
            refused.append(route.request.url)
            await route.abort()

    with ThreadedServer(create_app(settings)) as server:
        page = await browser.new_page()
        await page.route("**/*", offline)
        await page.goto(f"{server.url}/schema", wait_until="networkidle")
        await page.get_by_text("Accept a signed batch", exact=False).first.wait_for(timeout=30_000)
        body = await page.inner_text("body")
        await page.close()
    assert refused == []
    assert "/v1/edge/events" in body
    assert "Authorize" in body  # the security schemes are offered
