"""Incident routes on the real app: the status workflow, notes, links and evidence export."""

import io
import uuid
import zipfile

import pytest
from litestar.testing import AsyncTestClient

from hub.runtime import Services
from tests.hub.audit.test_routes import bearer

pytestmark = [pytest.mark.db, pytest.mark.redis]


async def test_workflow_moves_one_step_at_a_time(
    client: AsyncTestClient, services: Services
) -> None:
    headers = await bearer(client, services, "olga", "compliance_officer")
    made = (await client.post("/v1/incidents", json={"title": "Gate"}, headers=headers)).json()
    base = f"/v1/incidents/{made['id']}"
    skip = await client.post(f"{base}/status", json={"status": "closed"}, headers=headers)
    assert skip.status_code == 409
    for status in ("investigating", "closed"):
        moved = await client.post(f"{base}/status", json={"status": status}, headers=headers)
        assert moved.json()["status"] == status
    assert (
        await client.post(f"{base}/assign", json={"assignee": "x"}, headers=headers)
    ).status_code == 409
    note = await client.post(f"{base}/notes", json={"body": "closing remark"}, headers=headers)
    assert note.status_code == 201
    detail = (await client.get(base, headers=headers)).json()
    assert [n["kind"] for n in detail["notes"]] == ["status", "status", "note"]
    actions = {
        e["action"]
        for e in (
            await client.get(f"/v1/audit/entries?target=incident:{made['id']}", headers=headers)
        ).json()["entries"]
    }
    assert actions == {"incident.create", "incident.status", "incident.note"}


async def test_unknown_event_cannot_be_linked(client: AsyncTestClient, services: Services) -> None:
    headers = await bearer(client, services, "olga", "compliance_officer")
    made = (await client.post("/v1/incidents", json={"title": "Gate"}, headers=headers)).json()
    answer = await client.post(
        f"/v1/incidents/{made['id']}/events", json={"event_id": str(uuid.uuid4())}, headers=headers
    )
    assert answer.status_code == 404


async def test_evidence_verifies_and_tampering_is_caught(
    client: AsyncTestClient, services: Services
) -> None:
    headers = await bearer(client, services, "olga", "compliance_officer")
    made = (await client.post("/v1/incidents", json={"title": "Gate"}, headers=headers)).json()
    package = (await client.post(f"/v1/incidents/{made['id']}/export", headers=headers)).content
    # The export's entry went through the appender and committed before the package left.
    exported = await services.db.pool.fetchrow(
        "SELECT actor, detail FROM audit_log WHERE action = 'incident.export' AND target = $1",
        f"incident:{made['id']}",
    )
    assert exported is not None
    assert exported["actor"] == "user:olga"
    zip_headers = {**headers, "Content-Type": "application/zip"}
    ok = (
        await client.post("/v1/incidents/evidence/verify", content=package, headers=zip_headers)
    ).json()
    assert ok["ok"] is True
    tampered = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as src, zipfile.ZipFile(tampered, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            dst.writestr(name, data.replace(b"Gate", b"Gats") if name == "incident.json" else data)
    bad = (
        await client.post(
            "/v1/incidents/evidence/verify", content=tampered.getvalue(), headers=zip_headers
        )
    ).json()
    assert bad["ok"] is False
    assert bad["problems"] == ["incident.json does not match its SHA-256 in the manifest"]
