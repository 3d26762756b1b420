"""SIGTERM to a real `hub api`: `/readyz` turns 503 at once, the in-flight request still
completes, then the process exits."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import pytest

from hub.settings import Settings
from tests.hub.ingest.builders import batch
from tests.hub.observability.processes import HubProcess
from tests.support import BASE_URL, EdgeNode, signed_headers

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits, pytest.mark.slow]

EVENTS = "/v1/edge/events"


async def test_sigterm_turns_readyz_503_and_drains_in_flight_requests(
    settings: Settings, edge_node: EdgeNode, tmp_path: Path
) -> None:
    run = msgspec.structs.replace(
        settings,
        shutdown_grace_seconds=1.5,
        public_base_url=BASE_URL,
        metrics_dir=str(tmp_path / "metrics"),
    )
    api = HubProcess("api", run, tmp_path / "api.log").start()
    try:
        await asyncio.to_thread(api.wait_ready)
        body = batch()
        headers = signed_headers(edge_node.signer, path=EVENTS, body=body)
        release = asyncio.Event()

        async def slow_body() -> AsyncIterator[bytes]:
            yield body[:10]
            await release.wait()  # the request stays in flight until we let it finish
            yield body[10:]

        async with httpx.AsyncClient(base_url=api.url, timeout=20) as http:
            upload = asyncio.create_task(http.post(EVENTS, content=slow_body(), headers=headers))
            await asyncio.sleep(0.5)
            api.terminate()
            await asyncio.sleep(0.3)
            async with httpx.AsyncClient(base_url=api.url, timeout=5) as probe:
                ready = await probe.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["shutdown"].startswith("failing")
            release.set()
            response = await upload
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == 1
        code = await asyncio.to_thread(api.proc.wait, 20)  # type: ignore[union-attr]
        assert code in (0, -15), api.log_file.read_text()
    finally:
        await asyncio.to_thread(api.stop)
