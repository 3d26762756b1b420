"""WS /v1/feeds/live across two API processes sharing PostgreSQL and Redis; slow consumers."""

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import msgspec
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hub.app import create_app
from hub.settings import Settings
from tests.hub.feeds.builders import CENTRAL_CAMERA, NORTH_CAMERA, bearer, event, upload_to
from tests.support import EdgeNode, ThreadedServer, free_port, repo_root

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits, pytest.mark.slow]


@pytest.fixture
def second_process(feed_settings: Settings) -> Iterator[str]:
    """`hub api` in a process of its own, on the same database, Redis prefix and keys."""
    port = free_port()
    env = {
        **os.environ,
        "HUB_DATABASE_URL": feed_settings.database_url,
        "HUB_REDIS_URL": feed_settings.redis_url,
        "HUB_REDIS_PREFIX": feed_settings.redis_prefix,
        "HUB_MEDIA_DIR": feed_settings.media_dir,
        "HUB_SECRETS_DIR": feed_settings.secrets_dir,
        "HUB_API_TOKENS_FILE": feed_settings.api_tokens_file,
        "HUB_ENVIRONMENT": "test",
        "HUB_LOG_LEVEL": "warning",
        "HUB_LOG_JSON": "false",
    }
    process = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "hub.cli.main", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=repo_root(),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError("second hub process did not start")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def ws_url(base: str, query: str = "") -> str:
    return base.replace("http://", "ws://") + "/v1/feeds/live" + query


async def receive(ws: Any) -> dict[str, Any]:
    message: dict[str, Any] = msgspec.json.decode(await asyncio.wait_for(ws.recv(), 10))
    return message


async def test_events_stored_through_one_process_reach_subscribers_of_another(
    feed_settings: Settings,
    agencies: None,
    edge_node: EdgeNode,
    tokens: dict[str, str],
    second_process: str,
) -> None:
    with ThreadedServer(create_app(feed_settings)) as first:
        async with (
            connect(ws_url(second_process), additional_headers=bearer(tokens["police"])) as police,
            connect(ws_url(first.url), additional_headers=bearer(tokens["transit"])) as transit,
            connect(
                ws_url(second_process, f"?camera={CENTRAL_CAMERA}"),
                additional_headers=bearer(tokens["analytics"]),
            ) as analytics,
        ):
            north, central = event(NORTH_CAMERA), event(CENTRAL_CAMERA)
            started = time.monotonic()
            await upload_to(first.url, edge_node, north, central)
            to_police, to_transit, to_analytics = await asyncio.gather(
                receive(police), receive(transit), receive(analytics)
            )
            elapsed = time.monotonic() - started
            with pytest.raises(TimeoutError):  # police-north never gets the central event
                await asyncio.wait_for(police.recv(), 1.0)
        async with httpx.AsyncClient(base_url=first.url, timeout=10) as http:
            police_get = partial(http.get, "/v1/feeds/events", headers=bearer(tokens["police"]))
            pulled = (await police_get()).json()
            resumed = (await police_get(params={"cursor": to_police["cursor"]})).json()
        for token in (tokens["admin"], tokens["marketing"]):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(ws_url(second_process), additional_headers=bearer(token)):
                    pass
            assert refused.value.response.status_code == 403
    assert elapsed < 5
    assert to_police["event_id"] == north["event_id"]
    assert to_police["record"]["detections"][1]["attributes"]["plate_text"] == "AB-123-CD"
    assert to_transit["event_id"] == central["event_id"]
    assert to_transit["record"]["detections"][1]["attributes"]["plate_text"] != "AB-123-CD"
    assert "plate_text" not in to_analytics["record"]["detections"][1].get("attributes", {})
    for message in (to_police, to_transit, to_analytics):
        assert message["type"] == "event"
        assert message["decision_id"]
        assert message["cursor"]
    # Live and pulled feeds show the agency the same position, and the live cursor resumes
    # the pulled feed after the event.
    assert [i["seq"] for i in pulled["items"]] == [to_police["seq"]]
    assert resumed["items"] == []


async def read_until_closed(ws: Any) -> tuple[int, ConnectionClosed]:
    """Read everything that is still queued; how many messages, and how the socket closed."""
    received = 0
    while True:
        try:
            await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed as closed:
            return received, closed
        received += 1


def heavy_event() -> dict[str, Any]:
    """An event of ~5 KiB, so a few hundred fill the socket buffers quickly."""
    detection = {
        "label": "plate",
        "confidence": 0.8,
        "box": {"x": 0.5, "y": 0.5, "width": 0.1, "height": 0.1},
        "attributes": {f"attr_{i}": "x" * 48 for i in range(12)},
    }
    return event(NORTH_CAMERA, detections=[detection] * 8)


async def test_a_consumer_that_stops_reading_is_dropped_with_4008(
    feed_settings: Settings, agencies: None, edge_node: EdgeNode, tokens: dict[str, str]
) -> None:
    settings = msgspec.structs.replace(feed_settings, feeds_live_buffer=4)
    with ThreadedServer(create_app(settings)) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.setblocking(False)
        async with connect(
            ws_url(server.url),
            additional_headers=bearer(tokens["police"]),
            sock=sock,
            max_queue=1,
        ) as slow:
            sent = 0
            for _ in range(12):
                await upload_to(server.url, edge_node, *[heavy_event() for _ in range(100)])
                sent += 100
            received, closed = await read_until_closed(slow)
    assert closed.rcvd is not None
    assert closed.rcvd.code == 4008
    assert "slow consumer" in closed.rcvd.reason
    assert received < sent
