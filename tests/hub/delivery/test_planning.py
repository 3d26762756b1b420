"""Routing at ingest: an accepted event gets a ledger row for each enabled agency whose
subscription (labels, cameras, minimum confidence) selects it, and for no other; quarantined,
rejected and re-sent events get none. Planned from the batch as inserted, without reading
the events back (hub/delivery/repository/ledger.py)."""

from datetime import timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from hub.contracts.detection_v1 import EventBatch
from hub.delivery.agencies import add_agency
from hub.delivery.planner import SubscriptionPlanner
from hub.delivery.schemas import AgencyCreate, Subscription
from hub.ingest.ports import Planned
from hub.ingest.service import IngestDeps, accept_batch
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.delivery.harness import Receivers, ingest
from tests.hub.ingest.builders import ByCamera, event
from tests.support import EdgeNode

pytestmark = [pytest.mark.db, pytest.mark.redis]

SUBSCRIPTIONS = {
    "everything": Subscription(),
    "vehicles": Subscription(classes=["vehicle", "face"]),
    "camera-2": Subscription(cameras=["demo-cam-2"]),
    "confident": Subscription(min_confidence=0.9),
    "confident-people-cam-1": Subscription(
        classes=["person"], cameras=["demo-cam-1"], min_confidence=0.8
    ),
}


def detected(*pairs: tuple[str, float]) -> list[dict[str, Any]]:
    box = {"x": 0.1, "y": 0.1, "width": 0.2, "height": 0.2}
    return [{"label": label, "confidence": c, "box": box} for label, c in pairs]


async def test_each_event_is_planned_for_exactly_the_agencies_that_subscribe_to_it(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    receivers: Receivers,
) -> None:
    ids = {}
    for name, subscription in SUBSCRIPTIONS.items():
        created = await add_agency(
            services.db,
            services.delivery.adapters,
            AgencyCreate(
                name=name, kind="rest", config=receivers.config("rest"), subscription=subscription
            ),
            actor="test",
        )
        ids[created.id] = name
    disabled = await add_agency(
        services.db,
        services.delivery.adapters,
        AgencyCreate(name="off", kind="rest", config=receivers.config("rest")),
        actor="test",
    )
    async with services.db.pool.acquire() as conn:
        await conn.execute("UPDATE agency SET status = 'disabled' WHERE id = $1", disabled.id)
    events = {
        # person at 0.95 on camera 1: everything, confident, confident-people-cam-1
        "a": event(camera_id="demo-cam-1", detections=detected(("person", 0.95))),
        # a vehicle (and a person below 0.8) on camera 2: everything, vehicles, camera-2
        "b": event(camera_id="demo-cam-2", detections=detected(("vehicle", 0.7), ("person", 0.6))),
        # a person at exactly 0.9 on camera 1: the minimum is inclusive, as stored (a real)
        "c": event(camera_id="demo-cam-1", detections=detected(("person", 0.9))),
        # a plate on camera 2: everything, camera-2
        "d": event(camera_id="demo-cam-2", detections=detected(("plate", 0.6))),
    }
    await ingest(client, edge_node, list(events.values()))
    await ingest(client, edge_node, [events["a"]])  # a re-send plans nothing again

    planned = await planned_by_event(settings)
    by_id = {e["event_id"]: key for key, e in events.items()}
    got = {by_id[event_id]: {ids[a] for a in agencies} for event_id, agencies in planned.items()}
    assert got == {
        "a": {"everything", "confident", "confident-people-cam-1"},
        "b": {"everything", "vehicles", "camera-2"},
        "c": {"everything", "confident", "confident-people-cam-1"},
        "d": {"everything", "camera-2"},
    }


async def planned_by_event(settings: Settings) -> dict[str, list[Any]]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(
            """SELECT e.event_id::text AS event_id, d.agency_id
               FROM delivery d
               JOIN detection_event e ON e.id = d.event_pk AND e.captured_at = d.event_captured_at
               ORDER BY d.agency_id"""
        )
    finally:
        await conn.close()
    found: dict[str, list[Any]] = {}
    for row in rows:
        found.setdefault(row["event_id"], []).append(row["agency_id"])
    assert all(len(set(v)) == len(v) for v in found.values()), "a doubled delivery"
    return found


async def test_quarantined_and_dropped_events_are_planned_for_no_agency(
    settings: Settings, services: Services, edge_node: EdgeNode, receivers: Receivers
) -> None:
    # Routing runs inside the events INSERT and sees every inserted row, quarantined ones
    # too: the planner's own SQL keeps them out, and dispatch hears of what it planned only.
    agency = await add_agency(
        services.db,
        services.delivery.adapters,
        AgencyCreate(name="everything", kind="rest", config=receivers.config("rest")),
        actor="test",
    )
    dispatched: list[Planned] = []
    planner = services.delivery.planner

    class Recording(SubscriptionPlanner):
        async def dispatch(self, planned: Planned) -> None:
            dispatched.append(dict(planned))
            await planner.dispatch(planned)

    deps = IngestDeps(
        db=services.db,
        future_tolerance=timedelta(seconds=60),
        policy=ByCamera({"demo-cam-2": "quarantine", "demo-cam-3": "drop"}),
        planner=Recording(planner.queue, planner.metrics, attempt_limit=planner.attempt_limit),
    )
    sent = {
        camera: event(camera_id=camera) for camera in ("demo-cam-1", "demo-cam-2", "demo-cam-3")
    }
    batch = msgspec.convert({"events": list(sent.values())}, EventBatch)
    result = await accept_batch(deps, node_id=edge_node.node.id, batch=batch)

    assert [r.status for r in result.results] == ["accepted", "accepted", "rejected"]
    planned = await planned_by_event(settings)
    assert planned == {sent["demo-cam-1"]["event_id"]: [agency.id]}
    assert dispatched == [{agency.id: 1}]
