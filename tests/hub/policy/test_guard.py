"""The policy guard on the real app: credentials, the default bundle's authz, 401 vs 403."""

from pathlib import Path

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from hub.app import create_app
from hub.identity.tokens import TokenEntry, append_token, new_token, token_hash
from hub.settings import Settings
from tests.hub.identity.builders import admin_token_fields
from tests.support import BASE_URL, EdgeNode

pytestmark = [pytest.mark.db, pytest.mark.redis]


def issue(path: Path, subject: str, **fields: object) -> str:
    token = new_token()
    append_token(
        path,
        msgspec.convert({"sha256": token_hash(token), "subject": subject, **fields}, TokenEntry),
    )
    return token


async def test_admin_token_reaches_admin_routes_and_others_are_refused(
    settings: Settings, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.toml"
    admin = issue(tokens, "ada", roles=["admin"], **admin_token_fields())
    agency = issue(
        tokens,
        "transit-bot",
        kind="client",
        roles=["agency"],
        agency="transit-authority",
        jurisdictions=["central"],
        clearance=2,
        purpose="traffic",
    )
    app = create_app(msgspec.structs.replace(settings, api_tokens_file=str(tokens)))
    async with AsyncTestClient(app=app, base_url=BASE_URL) as client:
        ok = await client.get(
            "/v1/admin/policy/status", headers={"Authorization": f"Bearer {admin}"}
        )
        denied = await client.get(
            "/v1/admin/policy/status", headers={"Authorization": f"Bearer {agency}"}
        )
        anonymous = await client.get("/v1/admin/policy/status")
        forged = await client.get(
            "/v1/admin/policy/status", headers={"Authorization": f"Bearer {new_token()}"}
        )
        probe = await client.get("/healthz")
    assert ok.status_code == 200, ok.text
    assert ok.json()["active_revision"] is None or isinstance(ok.json()["active_revision"], str)
    assert denied.status_code == 403
    body = denied.json()
    assert body["type"] == "/problems/policy_denied"
    assert body["decision_id"]
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "credentials_missing")
    assert (forged.status_code, forged.json()["code"]) == (401, "token_invalid")
    assert probe.status_code == 200


async def test_edge_node_signature_does_not_open_admin_routes(
    client: AsyncTestClient,
    edge_node: EdgeNode,
) -> None:
    path = "/v1/admin/policy/bundles"
    headers = edge_node.signer.sign(method="GET", url=f"{BASE_URL}{path}", body=b"")
    response = await client.get(path, headers=headers)
    assert response.status_code == 403
    assert response.json()["decision_id"]


async def test_decisions_are_logged_with_the_masked_input(
    client: AsyncTestClient,
    edge_node: EdgeNode,
    settings: Settings,
) -> None:
    import asyncio

    import asyncpg

    from tests.hub.ingest.builders import batch, event
    from tests.support import signed_headers

    body = batch(event())
    response = await client.post(
        "/v1/edge/events",
        content=body,
        headers=signed_headers(edge_node.signer, path="/v1/edge/events", body=body),
    )
    assert response.status_code == 200
    # The log flushes in the background (every 200 ms): poll the table for a while.
    rows: list[asyncpg.Record] = []
    conn = await asyncpg.connect(settings.database_url)
    try:
        for _ in range(50):
            rows = await conn.fetch("SELECT entrypoint, input::text AS input FROM policy_decisions")
            if len({r["entrypoint"] for r in rows}) >= 2:
                break
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    assert {"hub/authz/decision", "hub/ingest/decision"} <= {r["entrypoint"] for r in rows}
    assert all("AB-123-CD" not in r["input"] for r in rows)
