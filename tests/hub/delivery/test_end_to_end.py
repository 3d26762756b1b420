"""Deliveries end to end: signed ingest -> ledger -> real arq worker -> REST, SOAP and XML
receivers on loopback, with release policy redacting per agency."""

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from hub.runtime import Services
from hub.settings import Settings
from tests.hub.delivery.harness import (
    Receivers,
    all_settled,
    ingest,
    quick,
    register,
    running_worker,
    statuses,
    wait_until,
)
from tests.hub.ingest.builders import event
from tests.support import EdgeNode

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits]


def plate_event(camera: str, plate: str) -> dict[str, object]:
    return event(camera_id=camera, model_name="demo-synthetic") | {
        "detections": [
            {
                "label": "vehicle",
                "confidence": 0.9,
                "box": {"x": 0.1, "y": 0.1, "width": 0.5, "height": 0.5},
                "track_id": "v7",
            },
            {
                "label": "plate",
                "confidence": 0.8,
                "box": {"x": 0.2, "y": 0.4, "width": 0.1, "height": 0.05},
                "track_id": "v7",
                "attributes": {"plate_text": plate},
            },
        ]
    }


def plates_in(record: dict[str, object]) -> list[object]:
    detections = record.get("detections", [])
    assert isinstance(detections, list)
    return [d.get("attributes", {}).get("plate_text") for d in detections]


async def test_each_adapter_delivers_what_release_policy_allows(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
) -> None:
    await register(services, receivers)
    north = plate_event("demo-cam-1", "NORTH-111")
    central = plate_event("demo-cam-2", "CENT-222")
    await ingest(client, edge_node, [north, central])

    async with running_worker(quick(settings)):
        await wait_until(lambda: all_settled(settings, 6), what="six deliveries settled")

    # Every agency is offered both events; policy lets each see its own jurisdiction only.
    assert await statuses(settings) == {"delivered": 3, "withheld": 3}
    (rest,) = receivers.by_kind("rest")
    (soap,) = receivers.by_kind("soap")
    (xml,) = receivers.by_kind("xml")
    assert rest.event_id == north["event_id"]
    assert soap.event_id == central["event_id"]
    assert xml.event_id == central["event_id"]
    # police-north: plates in clear; transit-authority: hashed; city-analytics: removed.
    assert "NORTH-111" in plates_in(rest.record)
    transit_plates = [p for p in plates_in(soap.record) if p is not None]
    assert transit_plates
    assert all(p != "CENT-222" and len(str(p)) >= 16 for p in transit_plates)
    assert plates_in(xml.record) == [None, None]
    assert "CENT-222" not in str(xml.record)
    assert receivers.inbox.summary().duplicates == 0


async def test_three_server_errors_then_delivered_on_the_fourth_attempt(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
) -> None:
    await register(services, receivers, ("police-north",))
    receivers.inbox.fail_next(3, 500)
    await ingest(client, edge_node, [plate_event("demo-cam-1", "AA-1")])

    async with running_worker(quick(settings)):
        await wait_until(lambda: all_settled(settings, 1), what="delivery settled")

    conn = await asyncpg.connect(settings.database_url)
    try:
        delivery = await conn.fetchrow("SELECT id, status, attempts FROM delivery")
        outcomes = await conn.fetch(
            "SELECT outcome, status_code FROM delivery_attempt ORDER BY attempt"
        )
    finally:
        await conn.close()
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 4)
    assert [(r["outcome"], r["status_code"]) for r in outcomes] == [
        ("retry", 500),
        ("retry", 500),
        ("retry", 500),
        ("delivered", 200),
    ]
    assert receivers.inbox.count_of(str(delivery["id"])) == 1


async def test_client_error_is_a_dead_letter_without_retry(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
) -> None:
    await register(services, receivers, ("police-north",))
    receivers.inbox.fail_next(1, 400)
    await ingest(client, edge_node, [plate_event("demo-cam-1", "AA-2")])

    async with running_worker(quick(settings)):
        await wait_until(lambda: all_settled(settings, 1), what="delivery settled")

    conn = await asyncpg.connect(settings.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT status, attempts, last_status_code, dead_at FROM delivery"
        )
    finally:
        await conn.close()
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("dead", 1, 400)
    assert row["dead_at"] is not None
    assert receivers.inbox.summary().received == 0


async def test_agency_down_then_up_is_delivered_once(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
) -> None:
    await register(services, receivers, ("police-north", "transit-authority", "city-analytics"))
    receivers.stop()
    await ingest(client, edge_node, [plate_event("demo-cam-2", "CC-3")])

    async def retried() -> bool:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return bool(
                await conn.fetchval(
                    "SELECT count(DISTINCT delivery_id) = 2 FROM delivery_attempt "
                    "WHERE outcome = 'retry'"
                )
            )
        finally:
            await conn.close()

    async with running_worker(quick(settings)):
        await wait_until(retried, what="both central agencies retrying")
        receivers.start()
        await wait_until(lambda: all_settled(settings, 3), what="deliveries settled")

    assert await statuses(settings) == {"delivered": 2, "withheld": 1}
    summary = receivers.inbox.summary()
    assert (summary.unique, summary.duplicates) == (2, 0)
