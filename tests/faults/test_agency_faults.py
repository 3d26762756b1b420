"""An agency timing out (retried, delivered once) and an agency too slow for the offered load
(ingest sheds with 503 + Retry-After while the backlog is high, the edge keeps its batches,
and once the agency catches up they are accepted): nothing lost, nothing doubled."""

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from hub.app import create_app
from hub.runtime import Services
from hub.settings import Settings
from tests.faults.kit import FaultyReceivers, register_with
from tests.hub.delivery.conftest import _drop_job_keys  # noqa: F401 - autouse fixture
from tests.hub.delivery.harness import (
    EVENTS,
    all_settled,
    ingest,
    quick,
    running_worker,
    statuses,
    wait_until,
)
from tests.hub.ingest.builders import batch, event
from tests.support import BASE_URL, EdgeNode, signed_headers

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits, pytest.mark.slow]


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[FaultyReceivers]:
    found = FaultyReceivers(tmp_path)
    found.start()
    yield found
    found.stop()


def camera_events(camera: str, count: int) -> list[dict[str, object]]:
    return [event(camera_id=camera, model_name="demo-synthetic") for _ in range(count)]


async def fetch(settings: Settings, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


@pytest.mark.timeout(90)
async def test_agency_timing_out_is_retried_and_delivered_once(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: FaultyReceivers,
) -> None:
    await register_with(services, receivers, timeout_seconds=1)
    hangs = 6
    receivers.faults.hang_next(hangs, seconds=2.5)  # past the adapter's 1 s timeout
    await ingest(client, edge_node, camera_events("demo-cam-1", 5))  # police-north (REST)
    await ingest(client, edge_node, camera_events("demo-cam-2", 5))  # transit (SOAP) + XML
    total = 15
    # Every agency gets a row per event; release withholds what its jurisdiction may not see.
    rows = 30

    async with running_worker(quick(settings)):
        await wait_until(lambda: all_settled(settings, rows), within=60, what="all delivered")

    assert await statuses(settings) == {"delivered": total, "withheld": rows - total}
    assert receivers.faults.hung == hangs
    summary = receivers.inbox.summary()
    assert (summary.unique, summary.duplicates) == (total, 0)
    by_kind = {k: len(receivers.by_kind(k)) for k in ("rest", "soap", "xml")}
    assert by_kind == {"rest": 5, "soap": 5, "xml": 5}
    retries = await fetch(settings, "SELECT error FROM delivery_attempt WHERE outcome = 'retry'")
    assert len(retries) == hangs
    # REST and SOAP say "did not answer within 1s"; XML says "unreachable: ReadTimeout".
    errors = [(r["error"] or "").lower() for r in retries]
    assert all("within 1s" in e or "timeout" in e for e in errors), errors


@pytest.mark.timeout(120)
async def test_slow_agency_sheds_ingest_until_it_catches_up(
    settings: Settings, services: Services, edge_node: EdgeNode, receivers: FaultyReceivers
) -> None:
    await register_with(services, receivers, ("police-north",), max_concurrency=1)
    receivers.faults.delay = 0.05  # under 20 deliveries/s, one at a time
    tight = msgspec.structs.replace(settings, backpressure_max_backlog=8)
    spool: list[list[dict[str, object]]] = [camera_events("demo-cam-1", 5) for _ in range(40)]
    total = sum(len(b) for b in spool)
    shed: list[tuple[str, str]] = []
    accepted_after_shed = 0

    async with (
        AsyncTestClient(app=create_app(tight), base_url=BASE_URL) as client,
        running_worker(quick(settings)),
    ):
        deadline = time.monotonic() + 80
        while spool:  # the edge: send the oldest batch; keep it while refused
            assert time.monotonic() < deadline, f"spool never drained: {len(spool)} left"
            body = batch(*spool[0])
            response = await client.post(
                EVENTS,
                content=body,
                headers=signed_headers(edge_node.signer, path=EVENTS, body=body),
            )
            if response.status_code == 503:
                assert response.headers["content-type"].startswith("application/problem+json")
                shed.append((response.headers["retry-after"], response.json()["type"]))
                await asyncio.sleep(0.5)  # a real edge waits Retry-After; keep the test short
                continue
            assert response.status_code == 200, response.text
            assert response.json()["accepted"] == len(spool[0])
            spool.pop(0)
            if shed:
                accepted_after_shed += 1
            await asyncio.sleep(0.1)  # about 50 events/s offered: more than the agency takes
        await wait_until(lambda: all_settled(settings, total), within=60, what="all delivered")

    assert shed, "back-pressure never engaged"
    assert all(type_.endswith("/backpressure") for _, type_ in shed), shed
    assert {after for after, _ in shed} == {str(tight.backpressure_retry_after_seconds)}
    assert accepted_after_shed > 0, "ingest never accepted again"
    assert await statuses(settings) == {"delivered": total}
    (stored,) = await fetch(settings, "SELECT count(*) AS n FROM detection_event")
    assert stored["n"] == total
    summary = receivers.inbox.summary()
    assert (summary.unique, summary.duplicates) == (total, 0)
