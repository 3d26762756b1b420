"""The ingest use case on real PostgreSQL with a small policy fake: what policy decides per
event is what is stored (accepted or quarantined), answered (dropped events are rejected) and
routed (the events INSERT hands routing every inserted row with its disposition; the real
planner's choice among them is tested in tests/hub/delivery/test_planning.py)."""

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
import msgspec
import pytest

from hub.contracts.detection_v1 import DetectionEvent, EventBatch
from hub.ingest import repository
from hub.ingest.ports import NoDeliveries, Planned, RoutingSql
from hub.ingest.rules import prepare
from hub.ingest.service import IngestDeps, accept_batch
from hub.media import event_regions
from hub.runtime import Services
from tests.hub.ingest.builders import ByCamera, event
from tests.support import EdgeNode

pytestmark = [pytest.mark.db]


class EventsAsAgencies:
    """Routing fake: "plans" one row per inserted event that is accepted, under the event's id
    as its agency, so the answer dispatched names the events routing was given."""

    params: tuple[object, ...] = ()

    def sql(self, *, first: int, inserted: str) -> str:
        # `inserted` is the CTE's name, given by ingest's own SQL.
        return f"SELECT event_id AS agency_id FROM {inserted} WHERE disposition = 'accepted'"  # noqa: S608


class Routed(NoDeliveries):
    """Planner fake that remembers which events were routed (dispatched after commit)."""

    def __init__(self) -> None:
        self.asked: set[UUID] = set()

    def routing(self) -> RoutingSql | None:
        return EventsAsAgencies()

    async def dispatch(self, planned: Planned) -> None:
        assert set(planned.values()) <= {1}
        self.asked |= set(planned)


async def test_policy_dispositions_are_stored_answered_and_routed(
    services: Services, edge_node: EdgeNode
) -> None:
    cameras = {"demo-cam-1": "accept", "demo-cam-2": "quarantine", "demo-cam-3": "drop"}
    sent = [event(camera_id=camera) for camera in cameras for _ in range(2)]
    planner = Routed()
    deps = IngestDeps(
        db=services.db,
        future_tolerance=timedelta(seconds=60),
        policy=ByCamera({"demo-cam-2": "quarantine", "demo-cam-3": "drop"}),
        planner=planner,
    )
    batch = msgspec.convert({"events": sent}, EventBatch)
    result = await accept_batch(deps, node_id=edge_node.node.id, batch=batch)

    assert [r.status for r in result.results] == ["accepted"] * 4 + ["rejected"] * 2
    assert result.results[-1].reason == "dropped by policy"
    async with services.db.pool.acquire() as conn:
        rows = await conn.fetch("SELECT event_id, camera_id, disposition FROM detection_event")
    assert {r["camera_id"]: r["disposition"] for r in rows} == {
        "demo-cam-1": "accepted",
        "demo-cam-2": "quarantined",
    }
    assert len(rows) == 4
    accepted = {r["event_id"] for r in rows if r["disposition"] == "accepted"}
    assert planner.asked == accepted


@pytest.mark.parametrize(
    "stored_days_ago",
    [
        pytest.param(0, id="same-partition"),
        # More than a month back: the first send's row lies in another partition than the
        # re-send's, which the batch's look-up of known ids must search too.
        pytest.param(40, id="other-partition"),
    ],
)
async def test_a_batch_mixing_new_stored_and_reused_ids_stores_only_the_new(
    services: Services, edge_node: EdgeNode, stored_days_ago: int
) -> None:
    # The insert leaves out ids the node already stored at any capture time (the unique key
    # alone would let an id come back under another captured_at), and only those are looked
    # up to answer: the same answers as a look-up before the insert gave.
    long_ago = (datetime.now(UTC) - timedelta(days=stored_days_ago, seconds=5)).isoformat()
    stored = [event(captured_at=long_ago), event(captured_at=long_ago)]
    planner = Routed()
    deps = IngestDeps(
        db=services.db,
        future_tolerance=timedelta(seconds=60),
        max_age=timedelta(days=90),
        policy=ByCamera({}),
        planner=planner,
    )
    node_id = edge_node.node.id
    await accept_batch(deps, node_id=node_id, batch=msgspec.convert({"events": stored}, EventBatch))
    moved = {**stored[1], "captured_at": event()["captured_at"]}  # same id, other capture time
    fresh = event()
    planner.asked.clear()
    mixed = msgspec.convert({"events": [stored[0], moved, fresh]}, EventBatch)
    result = await accept_batch(deps, node_id=node_id, batch=mixed)

    assert [r.status for r in result.results] == ["accepted", "rejected", "accepted"]
    assert result.results[1].reason == "event_id already used for different content"
    assert planner.asked == {UUID(fresh["event_id"])}
    async with services.db.pool.acquire() as conn:
        counts = await conn.fetch(
            "SELECT event_id, count(*) AS n FROM detection_event GROUP BY event_id"
        )
    assert {str(r["event_id"]): r["n"] for r in counts} == {
        stored[0]["event_id"]: 1,
        stored[1]["event_id"]: 1,
        fresh["event_id"]: 1,
    }


async def test_index_columns_hold_each_events_own_classes_and_media(
    services: Services, edge_node: EdgeNode
) -> None:
    """The insert receives text columns joined across the batch: each row gets its own."""
    snapshot = {"sha256": "b" * 64, "kind": "snapshot"}
    crop = {"sha256": "c" * 64, "kind": "crop"}
    person = {
        "label": "person",
        "confidence": 0.9,
        "box": {"x": 0, "y": 0, "width": 1, "height": 1},
    }
    sent = [
        event(camera_id="demo-cam-1", detections=[person]),  # no media: an empty item
        event(camera_id="demo-cam-2", media=[snapshot, crop]),
        event(camera_id="demo-cam-3", detections=[person]),
    ]
    deps = IngestDeps(db=services.db, future_tolerance=timedelta(seconds=60))
    batch = msgspec.convert({"events": sent}, EventBatch)
    result = await accept_batch(deps, node_id=edge_node.node.id, batch=batch)

    assert result.accepted == 3
    async with services.db.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT camera_id, classes, max_confidence, media_sha256 FROM detection_event"
        )
    stored = {r["camera_id"]: (r["classes"], r["max_confidence"], r["media_sha256"]) for r in rows}
    assert stored == {
        "demo-cam-1": (["person"], pytest.approx(0.9), []),
        "demo-cam-2": (["person", "plate"], pytest.approx(0.91), ["b" * 64, "c" * 64]),
        "demo-cam-3": (["person"], pytest.approx(0.9), []),
    }


async def test_a_batch_of_one_event_without_media_stores_an_empty_media_list(
    services: Services, edge_node: EdgeNode
) -> None:
    person = {"label": "car", "confidence": 0.8, "box": {"x": 0, "y": 0, "width": 1, "height": 1}}
    deps = IngestDeps(db=services.db, future_tolerance=timedelta(seconds=60))
    batch = msgspec.convert({"events": [event(detections=[person])]}, EventBatch)
    assert (await accept_batch(deps, node_id=edge_node.node.id, batch=batch)).accepted == 1
    async with services.db.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT classes, media_sha256 FROM detection_event")
    assert (row["classes"], row["media_sha256"]) == (["car"], [])


async def test_an_event_a_concurrent_request_stores_first_is_answered_as_a_resend(
    services: Services, edge_node: EdgeNode
) -> None:
    """The plain INSERT meets an event another transaction inserted after this one's look-up
    of known ids: it waits for that transaction, gets a unique violation, and the batch is
    written once more with conflicts skipped: the event is answered as a re-send of the same
    content is (accepted, not stored again). The first try leaves nothing behind."""
    node_id = edge_node.node.id
    snapshot = {"sha256": "d" * 64, "kind": "snapshot"}
    sent = [event(), event(media=[snapshot]), event()]
    taken = msgspec.convert(sent[1], DetectionEvent)
    deps = IngestDeps(db=services.db, future_tolerance=timedelta(seconds=60))
    other = await asyncpg.connect(services.settings.database_url)
    try:
        writing = other.transaction()
        await writing.start()
        await repository.insert_events(
            other,
            node_id=node_id,
            events=[prepare(taken)],
            quarantined=set(),
            regions=event_regions([taken], node_id=node_id),
        )
        batch = msgspec.convert({"events": sent}, EventBatch)
        task = asyncio.create_task(accept_batch(deps, node_id=node_id, batch=batch))
        await _until_waiting_on_a_lock(other)
        await writing.commit()
        result = await asyncio.wait_for(task, timeout=30)
        rows = await other.fetch("SELECT event_id, count(*) AS n FROM detection_event GROUP BY 1")
        regions = await other.fetchval(
            "SELECT count(*) FROM media_region WHERE sha256 = $1", snapshot["sha256"]
        )
        audited = await other.fetch(
            "SELECT detail::text FROM audit_log WHERE action = 'ingest.batch'"
        )
    finally:
        await other.close()
    assert [r.status for r in result.results] == ["accepted"] * 3
    assert {str(r["event_id"]): r["n"] for r in rows} == {e["event_id"]: 1 for e in sent}
    assert regions == 2  # the concurrent insert's two boxes; the rolled-back try left none
    assert [msgspec.json.decode(r["detail"]) for r in audited] == [
        {"accepted": 3, "duplicate": 0, "rejected": 0, "stored": 2}
    ]


async def _until_waiting_on_a_lock(conn: asyncpg.Connection) -> None:
    """Until some other session of this database waits for a lock (the batch's INSERT
    waiting on the transaction that holds its event). `conn` is inside that transaction,
    where PostgreSQL keeps one snapshot of pg_stat_activity: each poll clears it first."""
    for _ in range(300):
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        waiting = await conn.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND wait_event_type = 'Lock'"""
        )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the batch never waited on the concurrent insert")
