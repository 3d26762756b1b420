"""`/metrics` (operators only) with request latency by route template, ingest counters and
spool depth; `/v1/ops/slo` burn rates."""

import re
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from hub.app import create_app
from hub.settings import Settings
from tests.hub.delivery.harness import EVENTS
from tests.hub.ingest.builders import batch
from tests.support import BASE_URL, EdgeNode, signed_headers

pytestmark = [pytest.mark.db, pytest.mark.redis]


@pytest.fixture
async def ops_client(
    settings: Settings, operator_token: tuple[Path, str]
) -> AsyncIterator[AsyncTestClient]:
    path, token = operator_token
    app = create_app(msgspec.structs.replace(settings, api_tokens_file=str(path)))
    async with AsyncTestClient(app=app, base_url=BASE_URL) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


async def test_metrics_need_an_operator(client: AsyncTestClient) -> None:
    assert (await client.get("/metrics")).status_code == 401


async def test_metrics_show_routes_ingest_counts_and_spool_depth(
    ops_client: AsyncTestClient, edge_node: EdgeNode
) -> None:
    body = batch()
    headers = signed_headers(edge_node.signer, path=EVENTS, body=body)
    response = await ops_client.post(
        EVENTS, content=body, headers={**headers, "Hub-Spool-Depth": "42", "Authorization": ""}
    )
    assert response.status_code == 200, response.text
    assert (await ops_client.get("/readyz")).status_code == 200

    scrape = await ops_client.get("/metrics")
    assert scrape.status_code == 200
    text = scrape.text
    assert (
        'hub_http_request_seconds_count{method="POST",route="/v1/edge/events",status="200"}' in text
    )
    assert 'route="/readyz"' in text
    assert 'hub_ingest_events_total{status="accepted"}' in text
    assert f'hub_edge_spool_depth{{node="{edge_node.node.id}"}} 42.0' in text
    assert "hub_policy_decision_seconds_bucket" in text  # the policy collectors are exposed
    assert "hub_policy_decision_log_capacity" in text
    # Raw paths never become labels (bounded cardinality).
    assert not re.search(r'route="/v1/edge/media/[0-9a-f]{64}"', text)


async def test_slo_burn_rates_for_the_console(ops_client: AsyncTestClient) -> None:
    await ops_client.get("/readyz")
    response = await ops_client.get("/v1/ops/slo")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["source"] == "process"
    names = {s["slo"] for s in report["slos"]}
    assert {"ingest-availability", "ingest-latency", "feed-availability"} <= names
    for item in report["slos"]:
        assert set(item["burn_rates"]) == {"5m", "30m", "1h", "6h", "3d"}
