"""End to end in headless Chromium (Playwright driving Debian's /usr/bin/chromium): `hub
console` against a real hub on loopback, signed in through its form as an officer, an admin
and an operator; every page is looked at and screenshotted into .hub/screenshots/."""

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pyotp
import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.console.conftest import PASSWORD, Hub
from tests.support import free_port

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / ".hub" / "screenshots"
pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.slow]


def wait_for(url: str, deadline: float) -> None:
    """Poll until the URL answers 200."""
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


@pytest.fixture
def console_url(seeded: Hub, console_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """`hub console` serving on a free loopback port, calling the seeded hub."""
    port = free_port()
    env = {**os.environ, **console_env, "HOME": str(tmp_path)}
    command = [sys.executable, "-m", "hub.cli.main", "console", "--port", str(port)]
    console = subprocess.Popen(  # noqa: S603
        [*command, "--api-url", seeded.url],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/_stcore/health", time.monotonic() + 60)
        yield url
    finally:
        os.killpg(console.pid, 15)
        console.wait(timeout=20)


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


async def shown(page: Page, text: str) -> str:
    """Wait until the page shows `text`; the page's whole text. Only a visible match counts:
    Streamlit's tables draw on a canvas over hidden cells that hold the same text, and the
    first match in the page is often such a cell, which never becomes visible."""
    await page.get_by_text(text, exact=False).filter(visible=True).first.wait_for(timeout=30_000)
    return await page.inner_text("body")


async def shoot(page: Page, name: str) -> None:
    """Save a full-page screenshot (kept as a test artifact, never committed)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    # Streamlit's status widget ("Running… Stop") is shown until the script has finished.
    await page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=30_000)
    await page.wait_for_timeout(800)  # charts and fonts settle
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def sign_in(page: Page, url: str, user: str, totp: str | None = None) -> None:
    """Follow the page's Sign in link and submit the form."""
    await page.goto(url)
    await page.locator("#signin-link").click()
    await page.fill("#username", user)
    await page.fill("#password", PASSWORD)
    if totp:
        await page.fill("#totp", pyotp.TOTP(totp).now())
    await page.click("button[type=submit]")


@pytest.mark.timeout(240)
async def test_officer_deep_link_reload_pages_and_logout(
    seeded: Hub, console_url: str, browser: Browser
) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    await sign_in(page, f"{console_url}/audit", "olga")  # a bookmarked page, signed out
    assert page.url == f"{console_url}/audit"  # back where the officer asked to go
    text = await shown(page, "Verify against the latest checkpoint")
    assert "Signed in as olga" in text
    await shoot(page, "officer-audit")
    cookies = {c["name"]: c for c in await context.cookies()}
    session = cookies["hub_console_session"]
    assert session["httpOnly"]
    assert session["value"] not in page.url
    await page.reload()  # a reload keeps the session
    await shown(page, "Verify against the latest checkpoint")
    for path, expect in (("/", "Events (24 h)"), ("/decisions", "Decisions")):
        await page.goto(console_url + path)
        await shown(page, expect)
        await shoot(page, f"officer-{path.strip('/') or 'overview'}")
    await page.goto(console_url + "/incidents")
    await shown(page, "Incidents")
    await shoot(page, "officer-incidents")
    await page.goto(console_url + "/events")
    text = await shown(page, "Link to an incident")
    assert "withheld from you" in text
    # A thumbnail: Streamlit fills image elements after the page's text, so wait for one.
    await page.locator('[data-testid="stImage"] img').first.wait_for(timeout=20_000)
    await shoot(page, "officer-events")
    await page.get_by_role("button", name="Log out").click()
    await shown(page, "You logged out")
    await page.goto(console_url + "/audit")
    text = await shown(page, "Sign in")
    assert "Verify against the latest checkpoint" not in text
    await context.close()


@pytest.mark.timeout(240)
async def test_admin_signs_in_with_totp_and_sees_admin_pages(
    seeded: Hub, console_url: str, browser: Browser
) -> None:
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    await sign_in(page, console_url, "ada")  # no TOTP code: refused on the form
    assert "Sign-in refused" in await page.inner_text("body")
    await page.fill("#username", "ada")
    await page.fill("#password", PASSWORD)
    await page.fill("#totp", pyotp.TOTP(seeded.totp["ada"]).now())
    await page.click("button[type=submit]")
    text = await shown(page, "Policy revision")
    assert "Deploy" not in text  # the toolbar is in viewer mode
    await shoot(page, "admin-overview")
    await page.goto(console_url + "/deliveries")
    # Streamlit writes the page top-down: the heading can show before the rows under it. The
    # rows are a table (hidden cells under a canvas); the picked dead letter's caption under
    # it names the agency in plain text once they are there.
    await shown(page, "Dead letters")
    text = await shown(page, "Delivery to police-north")
    assert "Dead letters" in text
    await shoot(page, "admin-deliveries")
    await page.goto(console_url + "/policy")
    await shown(page, "Active revision")
    await shoot(page, "admin-policy")


@pytest.mark.timeout(240)
async def test_operator_sees_the_overview_only(
    seeded: Hub, console_url: str, browser: Browser
) -> None:
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    await sign_in(page, console_url, "otto")
    text = await shown(page, "Events (24 h)")
    assert "Signed in as otto" in text
    await shoot(page, "operator-overview")
    await page.goto(console_url + "/audit")  # not in the operator's menu
    text = await shown(page, "Overview")
    assert "Verify against the latest checkpoint" not in text
