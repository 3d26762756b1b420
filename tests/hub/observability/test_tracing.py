"""One trace from the edge request through ingest, the arq job, policy and the adapter call,
and the agency receives that trace's `traceparent`."""

import asyncio
import uuid

import pytest
from litestar.testing import AsyncTestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hub.delivery.agencies import add_agency
from hub.delivery.schemas import AgencyCreate, Subscription
from hub.runtime import Services
from hub.settings import Settings
from tests.hub.delivery.harness import EVENTS, quick, running_worker, statuses, wait_until
from tests.hub.ingest.builders import batch, event
from tests.hub.observability.conftest import HeaderRecorder
from tests.support import EdgeNode, signed_headers

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.commits]


async def test_one_trace_spans_ingest_job_policy_and_adapter(
    settings: Settings,
    services: Services,
    client: AsyncTestClient,
    edge_node: EdgeNode,
    recorder: HeaderRecorder,
    spans: InMemorySpanExporter,
) -> None:
    await add_agency(
        services.db,
        services.delivery.adapters,
        AgencyCreate(
            name="police-north",
            kind="rest",
            config=recorder.config(),
            subscription=Subscription(purpose="investigation"),
            jurisdictions=["north"],
            clearance=3,
        ),
        actor="test",
    )
    trace_id = uuid.uuid4().hex
    edge_traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    body = batch(event(camera_id="demo-cam-1", model_name="demo-synthetic"))
    headers = signed_headers(edge_node.signer, path=EVENTS, body=body)
    response = await client.post(
        EVENTS, content=body, headers={**headers, "traceparent": edge_traceparent}
    )
    assert response.status_code == 200, response.text

    async with running_worker(quick(settings)):
        await wait_until(
            lambda: _delivered(settings), within=30, what="the delivery to be acknowledged"
        )
    await asyncio.sleep(0.1)

    [(received, _)] = recorder.received
    assert received["traceparent"].split("-")[1] == trace_id
    in_trace = [s for s in spans.get_finished_spans() if f"{s.context.trace_id:032x}" == trace_id]
    names = {s.name for s in in_trace}
    assert {
        "POST /v1/edge/events",
        "ingest.accept_batch",
        "deliver",
        "policy.release",
        "adapter rest",
    } <= names, names
    # asyncpg and httpx are instrumented: their calls are spans of the same trace.
    kinds = {s.instrumentation_scope.name for s in in_trace if s.instrumentation_scope}
    assert any("asyncpg" in k for k in kinds), kinds
    assert any("httpx" in k for k in kinds), kinds
    # The agency's parent span is the outgoing call (httpx) under the adapter span.
    parent = received["traceparent"].split("-")[2]
    by_id = {f"{s.context.span_id:016x}": s for s in in_trace}
    assert parent in by_id
    job = next(s for s in in_trace if s.name == "deliver")
    server = next(s for s in in_trace if s.name == "POST /v1/edge/events")
    assert server.parent is not None
    assert f"{server.parent.span_id:016x}" == edge_traceparent.split("-")[2]
    assert job.parent is not None


async def _delivered(settings: Settings) -> bool:
    return (await statuses(settings)).get("delivered", 0) == 1
