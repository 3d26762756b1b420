"""Builders for media tests: the demo frame (a real face above a rendered plate), the boxes
the edge reports on it, events that reference it, and pixel measures of a blur."""

import functools
import io
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from hub.cli.demo_edge import draw_frames
from hub.contracts.detection_v1 import BoundingBox
from hub.media import ScanKit

# Where demo frame 00 shows them (640 x 480): the astronaut's face pasted at (30, 40) and
# the white plate rectangle at (340, 370)-(580, 430).
FACE_BOX = BoundingBox(x=0.14, y=0.17, width=0.13, height=0.22)
PLATE_BOX = BoundingBox(x=0.53, y=0.77, width=0.375, height=0.125)
PLATE_TEXT = "KL-456-MN"


@functools.cache
def demo_frames() -> tuple[bytes, ...]:
    """The PNG frames `hub up` draws for its demo camera (drawn once per test run)."""
    folder = Path(tempfile.mkdtemp(prefix="demo-frames-")) / "cam"
    draw_frames(folder, plate=PLATE_TEXT, mirrored=False)
    return tuple(p.read_bytes() for p in sorted(folder.glob("*.png")))


def demo_frame() -> bytes:
    """Frame 00 of the demo camera, PNG."""
    return demo_frames()[0]


def unique_frame() -> bytes:
    """Frame 00's pixels in a PNG of its own (a text chunk makes its hash unique), for tests
    whose queued jobs must not meet another test's."""
    with Image.open(io.BytesIO(demo_frame())) as image:
        info = PngImagePlugin.PngInfo()
        info.add_text("test", uuid.uuid4().hex)
        out = io.BytesIO()
        image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def box_json(box: BoundingBox) -> dict[str, float]:
    """A box as an event carries it."""
    return {"x": box.x, "y": box.y, "width": box.width, "height": box.height}


# The model each detector's events name (models the default ingest policy accepts).
MODELS = {"face": "centerface", "plate": "rapidocr"}


def detection_event(
    camera_id: str, sha256: str, *detections: dict[str, Any], kind: str = "snapshot"
) -> dict[str, Any]:
    """An event referencing one image, with the given detections."""
    return {
        "event_id": str(uuid.uuid4()),
        "camera_id": camera_id,
        "captured_at": (datetime.now(UTC) - timedelta(seconds=5)).isoformat(),
        "model_name": MODELS.get(detections[0]["label"], "demo-synthetic"),
        "model_version": "1.0",
        "detections": list(detections),
        "media": [{"sha256": sha256, "kind": kind, "content_type": "image/png"}],
    }


def face(box: BoundingBox = FACE_BOX) -> dict[str, Any]:
    """A face detection."""
    return {"label": "face", "confidence": 0.9, "box": box_json(box)}


def plate(box: BoundingBox = PLATE_BOX) -> dict[str, Any]:
    """A plate detection carrying its text."""
    return {
        "label": "plate",
        "confidence": 0.8,
        "box": box_json(box),
        "attributes": {"plate_text": PLATE_TEXT},
    }


def person() -> dict[str, Any]:
    """A person detection somewhere else in the frame."""
    return {
        "label": "person",
        "confidence": 0.7,
        "box": box_json(BoundingBox(x=0.7, y=0.1, width=0.2, height=0.3)),
    }


def pixels(data: bytes) -> np.ndarray[Any, np.dtype[np.float64]]:
    """An image as a float greyscale array."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L"), dtype=np.float64)


def _area(box: BoundingBox, shape: tuple[int, ...]) -> tuple[slice, slice]:
    height, width = shape[:2]
    return (
        slice(int(box.y * height), int((box.y + box.height) * height)),
        slice(int(box.x * width), int((box.x + box.width) * width)),
    )


def detail(grey: np.ndarray[Any, np.dtype[np.float64]]) -> float:
    """Variance of the Laplacian: how much fine detail (edges) an area holds."""
    lap = 4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    return float(lap.var())


def blur_measure(original: bytes, shown: bytes, box: BoundingBox) -> tuple[float, float]:
    """Inside `box`: mean absolute difference from the original (grey levels), and the share
    of the original's detail left (Laplacian variance, 1.0 = untouched)."""
    before, after = pixels(original), pixels(shown)
    area = _area(box, before.shape)
    change = float(np.abs(before[area] - after[area]).mean())
    return change, detail(after[area]) / max(detail(before[area]), 1e-9)


def assert_blurred(original: bytes, shown: bytes, box: BoundingBox) -> None:
    """The area is changed a lot and lost nearly all its detail."""
    change, left = blur_measure(original, shown, box)
    assert change > 8, f"mean abs difference {change:.1f} in {box}"
    assert left < 0.1, f"{left:.0%} of the detail left in {box}"


def assert_clear(original: bytes, shown: bytes, box: BoundingBox) -> None:
    """The area is exactly as stored."""
    before, after = pixels(original), pixels(shown)
    area = _area(box, before.shape)
    assert np.array_equal(before[area], after[area]), f"{box} was changed"


def assert_unchanged_outside(original: bytes, shown: bytes, *boxes: BoundingBox) -> None:
    """Every pixel outside the boxes (grown by a fifth on each side, beyond the blur's own
    margin) is exactly as stored."""
    before, after = pixels(original), pixels(shown)
    keep = np.ones(before.shape, dtype=bool)
    for box in boxes:
        grown = BoundingBox(
            x=max(0.0, box.x - box.width / 5),
            y=max(0.0, box.y - box.height / 5),
            width=min(1.0 - max(0.0, box.x - box.width / 5), box.width * 1.4),
            height=min(1.0 - max(0.0, box.y - box.height / 5), box.height * 1.4),
        )
        keep[_area(grown, before.shape)] = False
    assert keep.sum() > keep.size / 2
    assert np.array_equal(before[keep], after[keep])


@functools.cache
def scan_kit(media_dir: str) -> ScanKit:
    """One scan kit (models loaded once) per media folder for the whole test run."""
    return ScanKit(media_root=Path(media_dir))
