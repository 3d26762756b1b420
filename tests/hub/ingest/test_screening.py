"""Ingest through the real app: camera ownership, the registry's jurisdiction on the stored
record, and the capture-time window, all decided per event (never for the whole batch)."""

from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from edge.signing import RequestSigner, generate_key, public_key_pem
from hub.app import create_app
from hub.identity import CameraCreate, NodeCreate, add_node, remove_camera
from hub.identity.node_keys import NODE_KEY_TTL_SECONDS
from hub.runtime import Services, build_services
from hub.settings import Settings
from tests.hub.ingest.builders import batch, event
from tests.support import BASE_URL, EdgeNode, signed_headers

pytestmark = [pytest.mark.db, pytest.mark.redis]

EVENTS = "/v1/edge/events"


async def post(client: AsyncTestClient, signer: RequestSigner, body: bytes) -> dict[str, object]:
    headers = signed_headers(signer, path=EVENTS, body=body)
    response = await client.post(EVENTS, content=body, headers=headers)
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


async def stored(settings: Settings) -> dict[str, dict[str, object]]:
    """Stored payloads by event id."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch("SELECT event_id, payload::text AS p FROM detection_event")
    finally:
        await conn.close()
    return {str(r["event_id"]): msgspec.json.decode(r["p"]) for r in rows}


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


async def test_each_event_is_judged_alone_and_only_good_ones_are_stored(
    client: AsyncTestClient, edge_node: EdgeNode, settings: Settings
) -> None:
    owned = event(camera_id="demo-cam-1")
    foreign = event(camera_id="cam-of-someone-else")
    ancient = event(camera_id="demo-cam-2", captured_at="1970-01-01T00:00:00Z")
    stale = event(camera_id="demo-cam-2", captured_at=ago(days=30, minutes=5))
    recent = event(camera_id="demo-cam-2", captured_at=ago(days=29, hours=23))
    answer = await post(client, edge_node.signer, batch(owned, foreign, ancient, stale, recent))

    results = answer["results"]
    assert isinstance(results, list)
    assert [r["status"] for r in results] == [
        "accepted",
        "rejected",
        "rejected",
        "rejected",
        "accepted",
    ]
    assert results[1]["reason"] == "camera cam-of-someone-else is not registered to this node"
    too_old = "captured_at is older than 30 days (HUB_INGEST_MAX_AGE_DAYS)"
    assert results[2]["reason"] == results[3]["reason"] == too_old
    assert (answer["accepted"], answer["rejected"]) == (2, 3)
    assert set(await stored(settings)) == {owned["event_id"], recent["event_id"]}


async def test_the_stored_record_carries_the_registry_jurisdiction(
    client: AsyncTestClient, edge_node: EdgeNode, settings: Settings
) -> None:
    north, central = event(camera_id="demo-cam-1"), event(camera_id="demo-cam-3")
    await post(client, edge_node.signer, batch(north, central))
    records = await stored(settings)
    assert records[north["event_id"]]["jurisdiction"] == "north"
    assert records[central["event_id"]]["jurisdiction"] == "central"
    # The rest of the record is the event as sent.
    assert records[north["event_id"]]["camera_id"] == "demo-cam-1"
    assert records[north["event_id"]]["detections"][0]["label"] == "person"  # type: ignore[index]


async def test_an_event_cannot_claim_a_jurisdiction(
    client: AsyncTestClient, edge_node: EdgeNode
) -> None:
    claiming = event(camera_id="demo-cam-2", jurisdiction="north")
    body = batch(claiming)
    headers = signed_headers(edge_node.signer, path=EVENTS, body=body)
    response = await client.post(EVENTS, content=body, headers=headers)
    assert response.status_code == 200  # refused per event: one bad event never fails a batch
    (result,) = response.json()["results"]
    assert result["status"] == "rejected"
    assert "jurisdiction" in result["reason"]


async def test_a_node_cannot_post_for_another_nodes_camera(
    client: AsyncTestClient, edge_node: EdgeNode, services: Services, settings: Settings
) -> None:
    key = generate_key()
    intruder = await add_node(
        services.db,
        NodeCreate(
            name="intruder",
            public_key=public_key_pem(key),
            cameras=[CameraCreate(camera_id="intruder-cam", jurisdiction="central")],
        ),
        actor="test",
    )
    signer = RequestSigner(key_id=str(intruder.id), private_key=key)
    own, borrowed = event(camera_id="intruder-cam"), event(camera_id="demo-cam-1")
    answer = await post(client, signer, batch(own, borrowed))
    assert [r["status"] for r in answer["results"]] == ["accepted", "rejected"]  # type: ignore[union-attr]
    assert set(await stored(settings)) == {own["event_id"]}


class _Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_removed_camera_is_refused_once_the_bound_has_passed(
    settings: Settings, edge_node: EdgeNode, services: Services
) -> None:
    # The API keeps a node's cameras `NODE_KEY_TTL_SECONDS` (ADR 0024): its clock is moved.
    api = build_services(settings)
    clock = api.identity.node_cameras.clock = _Clock()
    async with AsyncTestClient(app=create_app(settings, services=api), base_url=BASE_URL) as client:
        first = await post(client, edge_node.signer, batch(event(camera_id="demo-cam-3")))
        assert first["accepted"] == 1
        await remove_camera(services.db, edge_node.node.name, "demo-cam-3", actor="test")
        clock.now += NODE_KEY_TTL_SECONDS - 0.01
        inside = await post(client, edge_node.signer, batch(event(camera_id="demo-cam-3")))
        assert inside["accepted"] == 1  # the documented window
        clock.now += 0.01
        second = await post(client, edge_node.signer, batch(event(camera_id="demo-cam-3")))
        assert second["rejected"] == 1


async def test_the_age_window_is_a_setting(settings: Settings, edge_node: EdgeNode) -> None:
    week_old = event(camera_id="demo-cam-1", captured_at=ago(days=7, minutes=1))
    strict = msgspec.structs.replace(settings, ingest_max_age_days=7)
    async with AsyncTestClient(app=create_app(strict), base_url=BASE_URL) as client:
        answer = await post(client, edge_node.signer, batch(week_old))
    reason = answer["results"][0]["reason"]  # type: ignore[index]
    assert reason == "captured_at is older than 7 days (HUB_INGEST_MAX_AGE_DAYS)"


async def test_what_the_edge_redacted_at_the_source_is_kept_for_release_policy(
    client: AsyncTestClient, edge_node: EdgeNode, settings: Settings
) -> None:
    burned = {"sha256": "a" * 64, "kind": "snapshot", "redacted_classes": ["face", "plate"]}
    plain = {"sha256": "b" * 64, "kind": "crop"}
    sent = event(camera_id="demo-cam-2", media=[burned, plain])
    await post(client, edge_node.signer, batch(sent))
    record = (await stored(settings))[sent["event_id"]]
    # The stored record is what release policy gets as `input.record`.
    media = record["media"]
    assert isinstance(media, list)
    assert media[0]["redacted_classes"] == ["face", "plate"]
    assert "redacted_classes" not in media[1]
