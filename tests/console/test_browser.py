"""End to end: `hub console` serves the console, headless Chromium loads its login page
(against a real hub on loopback) and a screenshot is saved under the test's temp dir."""

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.console.conftest import Hub
from tests.support import free_port

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.slow]


def wait_for(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


class Browser:
    """Headless Chromium driven over the DevTools protocol (one page, JSON messages)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0

    def call(self, method: str, **params: object) -> dict[str, object]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == self.next_id:
                return dict(message.get("result", {}))


def screenshot(url: str, shot: Path, *, profile: Path) -> str:
    """Load `url` until Streamlit has drawn the login form; save a PNG; return the text."""
    port = free_port()
    chromium = subprocess.Popen(  # noqa: S603
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            f"--user-data-dir={profile}",
            f"--remote-debugging-port={port}",
            "--window-size=1280,900",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/json/version", time.monotonic() + 30)
        target = next(
            t for t in httpx.get(f"http://127.0.0.1:{port}/json/list").json() if t["type"] == "page"
        )
        with connect(target["webSocketDebuggerUrl"], max_size=50_000_000) as ws:
            browser = Browser(ws)
            browser.call("Page.enable")
            browser.call("Page.navigate", url=url)
            text, deadline = "", time.monotonic() + 45
            while "Log in" not in text and time.monotonic() < deadline:
                time.sleep(0.5)
                found = browser.call("Runtime.evaluate", expression="document.body.innerText")
                text = str(dict(found.get("result", {})).get("value", ""))  # type: ignore[call-overload]
            time.sleep(1)  # let fonts and layout settle
            image = browser.call("Page.captureScreenshot", format="png")
        shot.write_bytes(base64.b64decode(str(image["data"])))
        return text
    finally:
        chromium.terminate()
        chromium.wait(timeout=20)


@pytest.mark.timeout(120)
async def test_console_loads_in_headless_chromium(seeded: Hub, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (scripts/chromium.sh installs Debian's chromium)")
    port = free_port()
    # A subprocess from an async test: the hub it talks to runs in its own thread.
    console = subprocess.Popen(  # noqa: S603, ASYNC220
        [
            sys.executable,
            "-m",
            "hub.cli.main",
            "console",
            "--port",
            str(port),
            "--api-url",
            seeded.url,
        ],
        env={**os.environ, "HOME": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/_stcore/health", time.monotonic() + 60)
        shot = tmp_path / "console.png"
        text = screenshot(url, shot, profile=tmp_path / "chromium")
        assert "Log in" in text
        assert "hub console" in text
        assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
    finally:
        os.killpg(console.pid, 15)
        console.wait(timeout=20)
        shutil.rmtree(tmp_path / "chromium", ignore_errors=True)
