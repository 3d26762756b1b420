"""Decision look-up and replay, and bundle sources, on the real app."""

import asyncio
from datetime import UTC, datetime

import pytest
from litestar.testing import AsyncTestClient

from hub.policy.decisions import diff
from hub.runtime import Services
from tests.hub.audit.test_routes import bearer

pytestmark = [pytest.mark.db, pytest.mark.redis]


def test_diff_names_changed_pointers() -> None:
    before = {"allow": True, "redactions": [{"op": "hash"}], "reason": "ok"}
    after = {"allow": False, "redactions": [{"op": "hash"}], "reason": "no"}
    assert [d.path for d in diff(before, after)] == ["/allow", "/reason"]
    assert diff(before, before) == []


async def test_lookup_and_replay_of_a_denial(client: AsyncTestClient, services: Services) -> None:
    headers = await bearer(client, services, "olga", "compliance_officer")
    denied = await client.get("/v1/admin/agencies", headers=headers)
    decision_id = denied.json()["decision_id"]
    await asyncio.sleep(0.5)  # the decision log writes every 200 ms
    found = (await client.get(f"/v1/decisions/{decision_id}", headers=headers)).json()
    assert found["entrypoint"] == "hub/authz/decision"
    assert found["result"]["allow"] is False
    replay = (await client.post(f"/v1/decisions/{decision_id}/replay", headers=headers)).json()
    assert replay["same"] is True
    assert replay["replay_decision_id"] != decision_id
    # The replay's entry went through the appender and committed before the answer.
    audited = await services.db.pool.fetchval(
        "SELECT detail->>'replay_decision_id' FROM audit_log "
        "WHERE action = 'decision.replay' AND target = $1",
        f"decision:{decision_id}",
    )
    assert audited == replay["replay_decision_id"]
    assert (await client.get("/v1/decisions/nope", headers=headers)).status_code == 404


async def test_sources_of_the_default_bundle(client: AsyncTestClient, services: Services) -> None:
    headers = await bearer(client, services, "olga", "compliance_officer")
    status = await client.get("/v1/ops/overview", headers=headers)
    revision = status.json()["active_revision"]
    assert (
        await client.get(f"/v1/admin/policy/bundles/{revision}/sources", headers=headers)
    ).status_code == 403


async def test_decision_list_filters_by_recipient_outcome_entrypoint_and_time(
    client: AsyncTestClient, services: Services
) -> None:
    headers = await bearer(client, services, "olga", "compliance_officer")
    denied = (await client.get("/v1/admin/agencies", headers=headers)).json()["decision_id"]
    await client.get("/v1/incidents", headers=headers)  # allowed
    await asyncio.sleep(0.5)  # the decision log writes every 200 ms

    # The searches below are logged decisions too: look only at what came before them.
    cut = datetime.now(UTC).isoformat()

    async def listed(**params: str) -> list[dict[str, object]]:
        params = {"until": cut, **params}
        answer = await client.get("/v1/decisions/search", params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        return list(answer.json()["decisions"])

    mine = await listed(recipient="olga", entrypoint="hub/authz/decision")
    assert {d["outcome"] for d in mine} == {"allow", "deny"}
    assert all(d["recipient"] == "olga" for d in mine)
    denials = await listed(recipient="olga", outcome="deny")
    assert [d["decision_id"] for d in denials] == [denied]
    assert denials[0]["reason"]
    assert await listed(recipient="nobody") == []
    first = mine[-1]
    assert await listed(recipient="olga", until=str(first["at"])) == []
    newest = await listed(recipient="olga", limit="1")
    assert newest == mine[:1]
    page = (
        await client.get(
            "/v1/decisions/search",
            params={"recipient": "olga", "limit": "1", "until": cut},
            headers=headers,
        )
    ).json()
    assert page["next_until"] == mine[0]["at"]
    await services.db.pool.execute(
        """INSERT INTO policy_decisions (decision_id, at, entrypoint, revision, latency_us,
                                         input, result)
           VALUES ('d-ingest', now() - interval '1 hour', 'hub/ingest/decision', 'r0', 5,
                   '{"node": {"id": "node-1"}}', '{"groups": []}')"""
    )
    [ingest] = await listed(recipient="node-1")
    assert ingest["outcome"] == "other"  # no allow/deny in an ingest result
    bad = await client.get("/v1/decisions/search", params={"outcome": "maybe"}, headers=headers)
    assert bad.status_code == 400
