"""POST /v1/edge/events and /v1/edge/media through a real app, PostgreSQL and Redis."""

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from edge.signing import RequestSigner, generate_key
from hub.identity import revoke_node
from hub.ingest.partitions import ensure_partitions, month_start, partition_name
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.ingest.builders import batch, event
from tests.support import EdgeNode, signed_headers

pytestmark = [pytest.mark.db, pytest.mark.redis]

EVENTS = "/v1/edge/events"
Client = AsyncTestClient


async def post_batch(client: Client, node: EdgeNode, body: bytes, **kwargs: object):
    return await client.post(
        EVENTS, content=body, headers=signed_headers(node.signer, path=EVENTS, body=body, **kwargs)
    )


async def count_events(settings: Settings) -> int:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM detection_event"))
    finally:
        await conn.close()


async def test_signed_batch_is_accepted_and_stored(
    client: Client, edge_node: EdgeNode, settings: Settings
) -> None:
    events = [event(), event()]
    response = await post_batch(client, edge_node, batch(*events))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 2
    assert [r["event_id"] for r in body["results"]] == [e["event_id"] for e in events]
    assert await count_events(settings) == 2


async def test_resend_stores_nothing_new_and_answers_the_same(
    client: Client, edge_node: EdgeNode, settings: Settings
) -> None:
    body = batch(event(), event())
    first = await post_batch(client, edge_node, body)
    second = await post_batch(client, edge_node, body)  # new signature and nonce, same content
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert await count_events(settings) == 2


async def test_event_id_reused_for_other_content_is_rejected(
    client: Client, edge_node: EdgeNode
) -> None:
    original = event()
    await post_batch(client, edge_node, batch(original))
    altered = {**original, "camera_id": "cam-other"}
    response = await post_batch(client, edge_node, batch(altered))
    result = response.json()["results"][0]
    assert result["status"] == "rejected"
    assert "different content" in result["reason"]


async def test_repeat_inside_one_batch_is_a_duplicate(
    client: Client, edge_node: EdgeNode, settings: Settings
) -> None:
    one = event()
    response = await post_batch(client, edge_node, batch(one, one))
    assert [r["status"] for r in response.json()["results"]] == ["accepted", "duplicate"]
    assert await count_events(settings) == 1


async def test_future_capture_time_is_rejected_per_event(
    client: Client, edge_node: EdgeNode
) -> None:
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    response = await post_batch(client, edge_node, batch(event(), event(captured_at=future)))
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert body["results"][1]["reason"] == "captured_at is in the future"


async def test_concurrent_resend_from_two_clients_stores_once(
    settings: Settings, edge_node: EdgeNode
) -> None:
    from hub.app import create_app

    body = batch(*[event() for _ in range(50)])
    async with (
        AsyncTestClient(app=create_app(settings), base_url="http://testserver.local") as a,
        AsyncTestClient(app=create_app(settings), base_url="http://testserver.local") as b,
    ):
        responses = await asyncio.gather(*(post_batch(c, edge_node, body) for c in (a, b, a, b)))
    assert {r.status_code for r in responses} == {200}
    assert all(r.json()["accepted"] == 50 for r in responses)
    assert await count_events(settings) == 50


@pytest.mark.commits
async def test_events_route_to_their_month_partition(
    client: Client, edge_node: EdgeNode, settings: Settings
) -> None:
    """The test makes the month it posts into lack a partition (dropping it), instead of
    assuming which months exist: that depends on the date and on earlier tests."""
    captured = datetime.now(UTC) - timedelta(seconds=5)
    month = month_start(captured.date())
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {partition_name(month)}")
        homeless = event(captured_at=captured.isoformat())
        await post_batch(client, edge_node, batch(homeless))
        assert await _partition_of(conn, homeless["event_id"]) == "detection_event_default"

        report = await ensure_partitions(conn, now=captured, ahead=0)
        assert partition_name(month) in report.created
        assert (report.moved_rows, report.default_rows) == (1, 0)
        housed = event(captured_at=captured.isoformat())
        await post_batch(client, edge_node, batch(housed))
        for posted in (homeless, housed):
            assert await _partition_of(conn, posted["event_id"]) == partition_name(month)
    finally:
        await ensure_partitions(conn, now=captured, ahead=0)  # never leave the month without one
        await conn.close()


async def _partition_of(conn: asyncpg.Connection, event_id: str) -> str:
    where = await conn.fetchval(
        "SELECT tableoid::regclass::text FROM detection_event WHERE event_id = $1",
        uuid.UUID(event_id),
    )
    return str(where)


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda h: {k: v for k, v in h.items() if k != "Signature"}, "signature_missing"),
        (lambda h: {**h, "Content-Digest": "sha-256=:" + "A" * 43 + "=:"}, "digest_mismatch"),
        (lambda h: {**h, "Signature": h["Signature"][:-6] + "AAAA=:"}, "signature_invalid"),
    ],
)
async def test_bad_signatures_are_refused(
    client: Client, edge_node: EdgeNode, settings: Settings, mutate, code
) -> None:
    body = batch()
    headers = mutate(signed_headers(edge_node.signer, path=EVENTS, body=body))
    response = await client.post(EVENTS, content=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == f"/problems/{code}"
    assert await count_events(settings) == 0


async def test_stale_signature_is_refused(client: Client, edge_node: EdgeNode) -> None:
    old = datetime.now(UTC) - timedelta(seconds=400)
    response = await post_batch(client, edge_node, batch(), created=old)
    assert response.status_code == 401
    assert response.json()["code"] == "signature_expired"


async def test_replayed_request_is_refused(
    client: Client, edge_node: EdgeNode, settings: Settings
) -> None:
    body = batch()
    headers = signed_headers(edge_node.signer, path=EVENTS, body=body)
    assert (await client.post(EVENTS, content=body, headers=headers)).status_code == 200
    replay = await client.post(EVENTS, content=body, headers=headers)
    assert replay.status_code == 401
    assert replay.json()["code"] == "signature_replayed"


async def test_unknown_node_is_refused(client: Client) -> None:
    signer = RequestSigner(key_id=str(uuid.uuid4()), private_key=generate_key())
    body = batch()
    response = await client.post(
        EVENTS, content=body, headers=signed_headers(signer, path=EVENTS, body=body)
    )
    assert response.status_code == 401
    assert response.json()["code"] == "unknown_node"


async def test_revoked_node_is_refused(
    client: Client, edge_node: EdgeNode, services: Services
) -> None:
    await revoke_node(services.db, edge_node.node.name, reason="stolen", actor="test")
    response = await post_batch(client, edge_node, batch())
    assert response.status_code == 401
    assert response.json()["code"] == "unknown_node"


async def test_oversized_body_is_refused_with_413(
    client: Client, edge_node: EdgeNode, settings: Settings
) -> None:
    body = b'{"events": [' + b" " * (settings.max_body_bytes + 10) + b"]}"
    response = await post_batch(client, edge_node, body)
    assert response.status_code == 413
    assert response.json()["type"] == "/problems/payload_too_large"


async def test_malformed_json_is_422_and_stores_nothing(
    client: Client, edge_node: EdgeNode, settings: Settings
) -> None:
    response = await post_batch(client, edge_node, b'{"events": [')
    assert response.status_code == 422
    assert response.json()["code"] == "malformed_json"
    assert await count_events(settings) == 0


async def test_schema_violation_rejects_that_event_alone_and_names_the_field(
    client: Client, edge_node: EdgeNode, settings: Settings
) -> None:
    bad = event()
    bad["detections"][0]["confidence"] = 1.5
    response = await post_batch(client, edge_node, batch(event(), bad))
    assert response.status_code == 200
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (1, 1)
    refused = answer["results"][1]
    assert (refused["event_id"], refused["status"]) == (bad["event_id"], "rejected")
    assert "$.events[1].detections[0].confidence" in refused["reason"]
    assert await count_events(settings) == 1


@pytest.mark.parametrize(
    ("field", "where"),
    [("model_version", "model_version"), ("track_id", "detections[0].track_id")],
)
async def test_a_nul_in_an_event_rejects_that_event_not_the_batch(
    client: Client, edge_node: EdgeNode, settings: Settings, field: str, where: str
) -> None:
    # PostgreSQL cannot store NUL: this answered 500 for the whole batch, retried forever.
    bad = event()
    if field == "track_id":
        bad["detections"][0]["track_id"] = "t\x001"
    else:
        bad[field] = "1.\x000"
    response = await post_batch(client, edge_node, batch(bad, event()))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [r["status"] for r in answer["results"]] == ["rejected", "accepted"]
    assert f"$.events[0].{where}" in answer["results"][0]["reason"]
    assert await count_events(settings) == 1


async def test_an_event_without_a_readable_id_fails_the_batch_with_422(
    client: Client, edge_node: EdgeNode, settings: Settings
) -> None:
    bad = event(event_id="not-a-uuid")
    response = await post_batch(client, edge_node, batch(event(), bad))
    assert response.status_code == 422
    assert "$.events[1].event_id" in response.json()["detail"]
    assert await count_events(settings) == 0


async def test_wrong_content_type_is_415(client: Client, edge_node: EdgeNode) -> None:
    body = batch()
    headers = signed_headers(edge_node.signer, path=EVENTS, body=body, content_type="text/plain")
    response = await client.post(EVENTS, content=body, headers=headers)
    assert response.status_code == 415


async def test_media_upload_is_content_addressed_and_idempotent(
    client: Client, edge_node: EdgeNode, settings: Settings
) -> None:
    data = b"\xff\xd8\xff\xe0" + b"jpeg-bytes" * 100
    sha = hashlib.sha256(data).hexdigest()
    path = f"/v1/edge/media/{sha}"
    for expected_created in (True, False):
        headers = signed_headers(edge_node.signer, path=path, body=data, content_type="image/jpeg")
        response = await client.post(path, content=data, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json() == {"sha256": sha, "size": len(data), "created": expected_created}
    from pathlib import Path

    assert (Path(settings.media_dir) / sha[:2] / sha[2:4] / sha).read_bytes() == data


async def test_media_with_wrong_hash_is_refused(client: Client, edge_node: EdgeNode) -> None:
    data = b"\x89PNG\r\n\x1a\n" + b"png" * 10
    path = f"/v1/edge/media/{'0' * 64}"
    headers = signed_headers(edge_node.signer, path=path, body=data, content_type="image/png")
    response = await client.post(path, content=data, headers=headers)
    assert response.status_code == 422
    assert response.json()["code"] == "media_hash_mismatch"


async def test_unknown_route_is_a_problem(client: Client) -> None:
    response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["type"] == "/problems/not_found"
