"""Builders of hub.detection.v1 events and batches for ingest tests."""

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from hub.ingest.ports import Disposition, IngestVerdicts
from hub.ingest.rules import PreparedEvent


def event(**overrides: Any) -> dict[str, Any]:
    """One valid event as JSON-ready data; override any field."""
    base: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "camera_id": "cam-gate-1",
        "captured_at": (datetime.now(UTC) - timedelta(seconds=5)).isoformat(),
        "model_name": "centerface",
        "model_version": "1.0",
        "detections": [
            {
                "label": "person",
                "confidence": 0.91,
                "box": {"x": 0.1, "y": 0.2, "width": 0.3, "height": 0.4},
                "track_id": "t1",
            },
            {
                "label": "plate",
                "confidence": 0.77,
                "box": {"x": 0.5, "y": 0.5, "width": 0.2, "height": 0.1},
                "attributes": {"plate_text": "AB-123-CD"},
            },
        ],
    }
    base.update(overrides)
    return base


def batch(*events: dict[str, Any]) -> bytes:
    """A batch body of the given events (one fresh event when none given)."""
    return msgspec.json.encode({"events": list(events) or [event()]})


class ByCamera:
    """Policy fake: a fixed disposition per camera, accept for the rest."""

    def __init__(self, verdicts: Mapping[str, Disposition]) -> None:
        self.verdicts = verdicts

    async def decide(
        self,
        *,
        node_id: uuid.UUID,
        events: Sequence[PreparedEvent],
        jurisdictions: Mapping[str, str] | None = None,
    ) -> IngestVerdicts:
        return IngestVerdicts(
            dispositions=[self.verdicts.get(p.event.camera_id, "accept") for p in events]
        )
