"""The camera registry through the admin API and the `hub nodes cameras` CLI, on a real
database: ownership, conflicts, removal and the audit trail."""

import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from edge.signing import generate_key, public_key_pem
from hub.app import create_app
from hub.identity import NodeCreate, add_node
from hub.identity.tokens import TokenEntry, append_token, new_token, token_hash
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.identity.builders import admin_token_fields
from tests.support import BASE_URL, EdgeNode, run_hub

pytestmark = [pytest.mark.db, pytest.mark.redis]

Headers = dict[str, str]


def issue(path: Path, subject: str, **fields: object) -> Headers:
    token = new_token()
    entry = {"sha256": token_hash(token), "subject": subject, **fields}
    append_token(path, msgspec.convert(entry, TokenEntry))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def api(
    settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[AsyncTestClient, Headers, Headers]]:
    """A client with an admin's and an agency's bearer headers."""
    tokens = tmp_path / "tokens.toml"
    admin = issue(tokens, "ada", roles=["admin"], **admin_token_fields())
    agency = issue(tokens, "bot", kind="client", roles=["agency"], agency="police-north")
    app = create_app(msgspec.structs.replace(settings, api_tokens_file=str(tokens)))
    async with AsyncTestClient(app=app, base_url=BASE_URL) as client:
        yield client, admin, agency


async def audit_actions(settings: Settings, target: str) -> list[str]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT action FROM audit_log WHERE target = $1 ORDER BY seq", target
        )
    finally:
        await conn.close()
    return [row["action"] for row in rows]


async def other_node(services: Services, name: str = "other-box") -> str:
    node = await add_node(
        services.db, NodeCreate(name=name, public_key=public_key_pem(generate_key())), actor="t"
    )
    return str(node.id)


async def test_admin_registers_lists_and_removes_a_camera(
    api: tuple[AsyncTestClient, Headers, Headers], edge_node: EdgeNode, settings: Settings
) -> None:
    client, admin, _ = api
    name = edge_node.node.name
    body = {"camera_id": "cam-yard-2", "jurisdiction": "central", "description": "yard"}
    added = await client.post(f"/v1/admin/nodes/{name}/cameras", json=body, headers=admin)
    assert added.status_code == 201, added.text
    assert added.json()["node_id"] == str(edge_node.node.id)
    assert added.json()["created_by"] == "user:ada"

    again = await client.post(f"/v1/admin/nodes/{name}/cameras", json=body, headers=admin)
    assert again.status_code == 201  # the same registration again changes nothing

    listed = await client.get(f"/v1/admin/nodes/{edge_node.node.id}/cameras", headers=admin)
    assert "cam-yard-2" in [c["camera_id"] for c in listed.json()]
    every = await client.get("/v1/admin/cameras", headers=admin)
    assert {c["camera_id"] for c in every.json()} >= {"cam-yard-2", "demo-cam-1"}

    removed = await client.delete(f"/v1/admin/nodes/{name}/cameras/cam-yard-2", headers=admin)
    assert removed.status_code == 200, removed.text
    gone = await client.delete(f"/v1/admin/nodes/{name}/cameras/cam-yard-2", headers=admin)
    assert gone.status_code == 404
    assert gone.json()["type"].endswith("/camera_not_found")
    assert await audit_actions(settings, "camera:cam-yard-2") == ["camera.add", "camera.remove"]


async def test_a_camera_owned_by_one_node_cannot_be_registered_to_another(
    api: tuple[AsyncTestClient, Headers, Headers], edge_node: EdgeNode, services: Services
) -> None:
    client, admin, _ = api
    other = await other_node(services)
    taken = {"camera_id": "demo-cam-1", "jurisdiction": "north"}
    refused = await client.post(f"/v1/admin/nodes/{other}/cameras", json=taken, headers=admin)
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/camera_exists")
    assert edge_node.node.name in refused.json()["detail"]

    moved = {"camera_id": "demo-cam-1", "jurisdiction": "central"}
    name = edge_node.node.name
    relocated = await client.post(f"/v1/admin/nodes/{name}/cameras", json=moved, headers=admin)
    assert relocated.status_code == 409  # another jurisdiction is a decision, not a re-add


async def test_camera_routes_validate_and_are_for_admins_only(
    api: tuple[AsyncTestClient, Headers, Headers], edge_node: EdgeNode
) -> None:
    client, admin, agency = api
    path = f"/v1/admin/nodes/{edge_node.node.name}/cameras"
    forbidden = await client.get(path, headers=agency)
    assert forbidden.status_code == 403
    bad = {"camera_id": "cam 1", "jurisdiction": "north"}
    assert (await client.post(path, json=bad, headers=admin)).status_code == 400
    unknown = await client.get("/v1/admin/nodes/no-such-node/cameras", headers=admin)
    assert unknown.status_code == 404
    assert unknown.json()["type"].endswith("/node_not_found")


async def test_cli_adds_lists_and_removes_cameras(settings: Settings, services: Services) -> None:
    env = {"HUB_DATABASE_URL": settings.database_url, "HUB_REDIS_URL": settings.redis_url}
    await other_node(services, "gate-box")
    added = await run_hub(
        "nodes", "cameras", "add", "gate-box", "gate-east", "--jurisdiction", "north", env=env
    )
    assert added.returncode == 0, added.stderr
    assert "gate-east registered to gate-box (north)" in added.stdout

    nodes = await run_hub("nodes", "list", env=env)
    (row,) = [line for line in nodes.stdout.splitlines() if "gate-box" in line]
    assert row.split()[3] == "1"  # the CAMERAS column
    listed = await run_hub("nodes", "cameras", "list", "gate-box", "--json", env=env)
    (camera,) = json.loads(listed.stdout)
    assert (camera["camera_id"], camera["jurisdiction"]) == ("gate-east", "north")

    bad = await run_hub(
        "nodes", "cameras", "add", "gate-box", "gate west", "--jurisdiction", "north", env=env
    )
    assert bad.returncode == 2
    assert "camera_id" in bad.stderr

    removed = await run_hub("nodes", "cameras", "remove", "gate-box", "gate-east", env=env)
    assert removed.returncode == 0, removed.stderr
    empty = await run_hub("nodes", "cameras", "list", "gate-box", env=env)
    assert "no cameras registered" in empty.stdout
    warned = await run_hub("nodes", "list", env=env)
    assert "0 cameras has every event rejected" in warned.stdout
