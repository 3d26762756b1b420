"""Which regions an event reports on the images it references (pure)."""

import uuid
from datetime import UTC, datetime

from hub.contracts.detection_v1 import BoundingBox, Detection, DetectionEvent, MediaRef
from hub.media.rules import normalised, regions_of
from hub.media.schemas import WHOLE_IMAGE

SNAPSHOT = "a" * 64
CROP = "b" * 64
NODE = uuid.uuid4()


def detection(label: str, x: float) -> Detection:
    return Detection(
        label=label, confidence=0.9, box=BoundingBox(x=x, y=0.1, width=0.2, height=0.2)
    )


def test_a_snapshot_gets_every_box_and_a_crop_every_class_whole() -> None:
    event = DetectionEvent(
        event_id=uuid.uuid4(),
        camera_id="cam",
        captured_at=datetime(2026, 11, 22, tzinfo=UTC),
        model_name="m",
        model_version="1",
        detections=[detection("face", 0.1), detection("face", 0.5), detection("plate", 0.7)],
        media=[MediaRef(sha256=SNAPSHOT), MediaRef(sha256=CROP, kind="crop")],
    )
    regions = regions_of([event], node_id=NODE)
    snapshot = [(r.region.label, r.region.box.x) for r in regions if r.sha256 == SNAPSHOT]
    assert snapshot == [("face", 0.1), ("face", 0.5), ("plate", 0.7)]
    crop = [(r.region.label, r.region.box) for r in regions if r.sha256 == CROP]
    assert crop == [("face", WHOLE_IMAGE), ("plate", WHOLE_IMAGE)]
    assert {(r.region.source, r.node_id, r.event_id) for r in regions} == {
        ("edge", str(NODE), str(event.event_id))
    }


def test_an_event_without_media_reports_nothing() -> None:
    event = DetectionEvent(
        event_id=uuid.uuid4(),
        camera_id="cam",
        captured_at=datetime(2026, 11, 22, tzinfo=UTC),
        model_name="m",
        model_version="1",
        detections=[detection("face", 0.1)],
    )
    assert regions_of([event], node_id=NODE) == []


def test_pixel_boxes_are_clipped_to_the_image() -> None:
    box = normalised((-10.0, 20.0, 700.0, 500.0), width=640, height=480)
    assert (box.x, box.y, box.width, box.height) == (0.0, 20 / 480, 1.0, 1.0 - 20 / 480)
