"""`GET /v1/ops/deliveries/{id}/preview`: operators see a delivery's metadata, never the
record an agency would receive, and each look is audited as a metadata view."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from hub.app import create_app
from hub.settings import Settings
from tests.hub.feeds.builders import bearer, event, issue, register_agencies, upload
from tests.support import BASE_URL, EdgeNode

pytestmark = [pytest.mark.db, pytest.mark.redis]

PLATE = "AB-123-CD"


@pytest.fixture
async def ops_client(settings: Settings, tmp_path: Path) -> AsyncIterator[AsyncTestClient]:
    """A real app whose tokens file knows an operator and an agency client."""
    tokens = tmp_path / "tokens.toml"
    ops_settings = msgspec.structs.replace(settings, api_tokens_file=str(tokens))
    await register_agencies(settings.database_url)
    async with AsyncTestClient(app=create_app(ops_settings), base_url=BASE_URL) as client:
        client.headers["x-operator"] = issue(tokens, "otto", roles=["operator"])
        client.headers["x-agency"] = issue(
            tokens,
            "police-bot",
            kind="client",
            roles=["agency"],
            agency="police-north",
            jurisdictions=["north"],
            clearance=3,
            purpose="investigation",
        )
        yield client


async def stored_delivery(settings: Settings) -> tuple[uuid.UUID, str]:
    """The delivery to police-north that ingest queued for the one stored event, marked
    dead with a decision id (no worker ever sends it)."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        row = await conn.fetchrow(
            """UPDATE delivery d SET status = 'dead', decision_id = 'dec-earlier'
               FROM agency a, detection_event e
               WHERE a.id = d.agency_id AND a.name = 'police-north'
                 AND e.id = d.event_pk AND e.captured_at = d.event_captured_at
               RETURNING d.id, e.event_id"""
        )
        delivery_id = row["id"]
        return delivery_id, str(row["event_id"])
    finally:
        await conn.close()


async def test_an_operator_sees_ids_and_counts_and_the_look_is_audited_as_such(
    ops_client: AsyncTestClient, edge_node: EdgeNode, settings: Settings
) -> None:
    await upload(ops_client, edge_node, event())
    delivery_id, event_id = await stored_delivery(settings)
    operator = bearer(ops_client.headers["x-operator"])

    response = await ops_client.get(f"/v1/ops/deliveries/{delivery_id}/preview", headers=operator)

    assert response.status_code == 200, response.text
    assert PLATE.encode() not in response.content
    assert b"captured_at" not in response.content
    assert b"record" not in response.content
    assert response.json() == {
        "delivery_id": str(delivery_id),
        "agency": "police-north",
        "status": "dead",
        "attempts": 0,
        "last_error": None,
        "event_id": event_id,
        "camera_id": "demo-cam-1",
        "detections": {"person": 1, "plate": 1},
        "media": 0,
        "decision_id": "dec-earlier",
    }
    await asyncio.sleep(0.6)  # the decision log writes every 200 ms
    conn = await asyncpg.connect(settings.database_url)
    try:
        audited = await conn.fetch(
            "SELECT actor, target, detail FROM audit_log WHERE action LIKE 'ops.%'"
        )
        releases = await conn.fetchval(
            "SELECT count(*) FROM policy_decisions WHERE entrypoint = 'hub/release/decision'"
        )
        release_audits = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE target = 'agency:police-north'"
        )
    finally:
        await conn.close()
    assert [(r["actor"], r["target"]) for r in audited] == [
        ("user:otto", f"delivery:{delivery_id}")
    ]
    detail = msgspec.json.decode(audited[0]["detail"])
    assert detail == {
        "agency": "police-north",
        "event_id": event_id,
        "shown": "metadata",
        "released": False,
    }
    assert releases == 0  # no release was evaluated for police-north on the operator's behalf
    assert release_audits == 0


async def test_only_operators_and_admins_look_and_an_unknown_delivery_is_a_problem(
    ops_client: AsyncTestClient,
) -> None:
    path = f"/v1/ops/deliveries/{uuid.uuid4()}/preview"
    refused = await ops_client.get(path, headers=bearer(ops_client.headers["x-agency"]))
    missing = await ops_client.get(path, headers=bearer(ops_client.headers["x-operator"]))

    assert refused.status_code == 403
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["code"] == "not_found"
