"""The payload ingest stores once attributes are sealed away: the event's canonical JSON with
each sealed detection's attributes emptied and a `pii_ref` naming them (pure, no services)."""

import uuid
from typing import Any

import msgspec
import pytest

from hub.contracts.detection_v1 import DetectionEvent
from hub.ingest.rules import prepare
from hub.retention.vault import PII_REF, strip_payload
from tests.hub.ingest.builders import event

NODE = uuid.UUID("6f1c0c8e-3f43-4c1e-9d7a-0a4f5b2d9e11")
PLAIN = {"label": "person", "confidence": 0.8, "box": {"x": 0, "y": 0, "width": 0.1, "height": 0.1}}


def _by_parsing(payload: bytes) -> bytes:
    """The stored form worked out from the JSON alone, as the vault's first version did."""
    record: dict[str, Any] = msgspec.json.decode(payload)
    sealed = [i for i, d in enumerate(record["detections"]) if d.get("attributes")]
    for index in sealed:
        record["detections"][index]["attributes"] = {}
    record[PII_REF] = {"node_id": str(NODE), "detections": sealed}
    return msgspec.json.encode(record, order="sorted")


@pytest.mark.parametrize(
    "fields",
    [
        {},  # a plate with text after a person without attributes
        {"detections": [{**PLAIN, "attributes": {"colour": "red"}}, PLAIN, PLAIN]},
        {
            "detections": [PLAIN, {**PLAIN, "label": "plate", "attributes": {"plate_text": "X1"}}],
            "media": [
                {"sha256": "a" * 64, "kind": "snapshot", "redacted_classes": ["face"]},
                {"sha256": "b" * 64, "kind": "crop"},
            ],
        },
    ],
    ids=["plate-second", "first-of-three", "with-media"],
)
def test_stripped_payload_is_the_same_bytes_as_parsing_it(fields: dict[str, Any]) -> None:
    prepared = prepare(msgspec.convert(event(**fields), DetectionEvent))
    stored = strip_payload(prepared.event, prepared.payload, node_id=NODE)
    assert stored == _by_parsing(prepared.payload)
    record = msgspec.json.decode(stored)
    assert all(not d.get("attributes") for d in record["detections"])
    assert record[PII_REF]["node_id"] == str(NODE)


def test_an_event_without_attributes_is_stored_as_sent() -> None:
    prepared = prepare(msgspec.convert(event(detections=[PLAIN]), DetectionEvent))
    assert strip_payload(prepared.event, prepared.payload, node_id=NODE) is prepared.payload
