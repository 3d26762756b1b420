"""The hub's scan with the edge's models, on the frames the demo camera shows."""

import pytest

from hub.contracts.detection_v1 import BoundingBox
from hub.media.scan import MediaScanner, ScanError, model_size
from tests.hub.media.builders import FACE_BOX, demo_frames


def iou(a: BoundingBox, b: BoundingBox) -> float:
    width = max(0.0, min(a.x + a.width, b.x + b.width) - max(a.x, b.x))
    height = max(0.0, min(a.y + a.height, b.y + b.height) - max(a.y, b.y))
    inter = width * height
    return inter / (a.width * a.height + b.width * b.height - inter)


@pytest.fixture(scope="module")
def scanner() -> MediaScanner:
    return MediaScanner.from_installed()


def test_the_scan_finds_the_demo_face_and_plate_on_every_frame(scanner: MediaScanner) -> None:
    for number, frame in enumerate(demo_frames()):
        found = scanner.scan(frame)
        faces = [b.box for b in found if b.label == "face"]
        plates = [b.box for b in found if b.label == "plate"]
        # The face moves 110 px (0.171875 of the width) per frame; the plate 30 px back.
        truth_face = BoundingBox(
            x=FACE_BOX.x + 0.171875 * number,
            y=FACE_BOX.y,
            width=FACE_BOX.width,
            height=FACE_BOX.height,
        )
        plate_x = (340 - 30 * number) / 640
        assert len(faces) == 1, (number, faces)
        assert iou(faces[0], truth_face) > 0.4, (number, faces)
        assert len(plates) == 1, (number, plates)
        # The text region lies inside the white plate.
        assert plate_x <= plates[0].x + 0.01
        assert plates[0].x + plates[0].width <= plate_x + 0.39
        assert plates[0].y >= 0.76
        assert plates[0].y + plates[0].height <= 0.9


def test_garbage_cannot_be_scanned(scanner: MediaScanner) -> None:
    with pytest.raises(ScanError):
        scanner.scan(b"\x89PNG\r\n\x1a\nnot an image")


def test_models_see_the_image_in_its_own_shape() -> None:
    assert model_size(640, 480) == (640, 480)
    assert model_size(4000, 3000) == (1280, 960)
    assert model_size(40, 60) == (128, 192)
