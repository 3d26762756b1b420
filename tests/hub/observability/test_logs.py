"""A full run (API and worker as real processes, a real agency receiver): every log line is
JSON, lines inside a trace carry its ids, and neither a plate nor a webhook secret appears."""

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from hub.runtime import Services
from hub.settings import Settings
from tests.hub.delivery.harness import EVENTS, Receivers, quick, register, statuses, wait_until
from tests.hub.delivery.test_end_to_end import plate_event
from tests.hub.ingest.builders import batch
from tests.hub.observability.processes import HubProcess
from tests.support import BASE_URL, EdgeNode, signed_headers

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits, pytest.mark.slow]

PLATE = "ZX-987-QW"


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Receivers]:
    found = Receivers(tmp_path)
    found.start()
    yield found
    found.stop()


@pytest.mark.timeout(90)
async def test_logs_are_json_with_trace_ids_and_no_secret_or_plate(
    settings: Settings,
    services: Services,
    edge_node: EdgeNode,
    receivers: Receivers,
    tmp_path: Path,
) -> None:
    await register(services, receivers, ("police-north",))
    run = msgspec.structs.replace(
        quick(settings),
        log_json=True,
        log_level="debug",
        metrics_dir=str(tmp_path / "metrics"),
        shutdown_grace_seconds=0.2,
        public_base_url=BASE_URL,  # what the test signer signs
    )
    api = HubProcess("api", run, tmp_path / "api.log").start()
    worker = HubProcess("worker", run, tmp_path / "worker.log").start()
    try:
        await asyncio.to_thread(api.wait_ready)
        body = batch(plate_event("demo-cam-1", PLATE))
        headers = signed_headers(edge_node.signer, path=EVENTS, body=body)
        async with httpx.AsyncClient(base_url=api.url) as http:
            response = await http.post(EVENTS, content=body, headers=headers)
        assert response.status_code == 200, response.text

        async def delivered() -> bool:
            return (await statuses(settings)).get("delivered", 0) == 1

        await wait_until(delivered, within=40, what="the plate event to be delivered")
    finally:
        await asyncio.to_thread(api.stop)
        await asyncio.to_thread(worker.stop)
    # The receiver saw the plate in clear (police may): the hub's logs never do.
    assert receivers.inbox.summary().unique == 1

    lines = [
        line
        for path in (api.log_file, worker.log_file)
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    assert len(lines) > 5
    for line in lines:
        assert PLATE not in line
        assert receivers.secret not in line
        assert receivers.secret.removeprefix("whsec_") not in line
        json.loads(line)  # every line is one JSON object
    traced = [json.loads(line) for line in lines if '"trace_id"' in line]
    assert any(r.get("event") == "request served" for r in traced)
    assert any(r.get("event") == "delivery attempt done" for r in traced)
