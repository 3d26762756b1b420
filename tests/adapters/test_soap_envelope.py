"""The SOAP envelope of an operation is prepared once (from zeep's own first envelope) and
filled per delivery: the bytes match zeep's, and the demo receiver, which validates each
request against its schema, takes every delivery made from the template."""

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from adapters.base import Message, PermanentError
from adapters.egress import EgressGuard
from adapters.soap.adapter import SoapAdapter
from adapters.soap.mapping import message_sources, request_elements, request_values
from tests.hub.delivery.harness import Receivers

OPERATION = "SubmitDetection"


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Receivers]:
    found = Receivers(tmp_path)
    found.start()
    yield found
    found.stop()


def message(**record: Any) -> Message:
    base = {
        "event_id": str(uuid.uuid4()),
        "node_id": str(uuid.uuid4()),
        "camera_id": "cam-1",
        "captured_at": "2026-12-04T10:00:00+00:00",
        "detections": [{"label": "person"}, {"label": "car"}],
        "media": [],
    }
    return Message(
        delivery_id=uuid.uuid4(), agency="a", attempt=1, decision_id="d", record=base | record
    )


def values_of(adapter: SoapAdapter, service: Any, sent: Message) -> dict[str, Any]:
    delivery = {
        "deliveryId": str(sent.delivery_id),
        "decisionId": sent.decision_id,
        "attempt": sent.attempt,
        "test": sent.test,
        "agency": sent.agency,
    }
    names = request_elements(service.operation(OPERATION))
    return request_values(names, message_sources(delivery=delivery, record=sent.record))


async def test_deliveries_from_the_template_are_schema_valid_and_built_once(
    receivers: Receivers,
) -> None:
    adapter = SoapAdapter(egress=EgressGuard.from_text("127.0.0.1/32", require_https=False))
    config = adapter.parse_config(receivers.config("soap"))
    try:
        sent = [message(camera_id=f"cam-{i}") for i in range(3)]
        receipts = [await adapter.deliver(m, config) for m in sent]
        service = await adapter._service(config)
        prepared = service.prepared[OPERATION]
        assert prepared is not None
        values = values_of(adapter, service, sent[0])
        ours = prepared.fill(values)[0]
        client = service.proxy._client
        theirs, _ = service.binding._create(
            OPERATION, (), values, client, service.proxy._binding_options
        )
    finally:
        await adapter.aclose()

    assert all(r.reference for r in receipts)
    assert [receivers.inbox.count_of(str(m.delivery_id)) for m in sent] == [1, 1, 1]
    assert {item.record["camera_id"] for item in receivers.inbox.items() if item.record} == {
        "cam-0",
        "cam-1",
        "cam-2",
    }
    assert receivers.inbox.summary().rejected == 0
    assert etree.tostring(ours, method="c14n") == etree.tostring(theirs, method="c14n")
    assert len(prepared.template[-1][0]) == 0  # filling never touched the template


async def test_a_value_outside_its_schema_type_is_a_permanent_error(
    receivers: Receivers,
) -> None:
    adapter = SoapAdapter(egress=EgressGuard.from_text("127.0.0.1/32", require_https=False))
    config = adapter.parse_config(receivers.config("soap"))
    try:
        await adapter.deliver(message(), config)  # the template is made by a good call
        with pytest.raises(PermanentError):
            await adapter.deliver(message(captured_at="not a time"), config)
    finally:
        await adapter.aclose()
    assert receivers.inbox.summary().unique == 1


async def test_optional_elements_come_and_go_between_calls_of_one_template(
    receivers: Receivers,
) -> None:
    adapter = SoapAdapter(egress=EgressGuard.from_text("127.0.0.1/32", require_https=False))
    config = adapter.parse_config(receivers.config("soap"))
    without = message()
    del without.record["node_id"]
    with_node = message()
    try:
        await adapter.deliver(without, config)  # the template comes from a call without it
        await adapter.deliver(with_node, config)
        await adapter.deliver(without, config)
    finally:
        await adapter.aclose()

    raw = {item.delivery_id: item.raw for item in receivers.inbox.items()}
    assert b"nodeId" not in raw[str(without.delivery_id)]
    assert with_node.record["node_id"].encode() in raw[str(with_node.delivery_id)]
    assert receivers.inbox.count_of(str(without.delivery_id)) == 2
