"""Synthetic detections and snapshots for the demo edge node and benchmarks.

Random but plausible: people are tall boxes, vehicles wide ones, some vehicles carry a plate
inside their box; snapshots are tiny valid JPEGs built byte by byte (no imaging library).
"""

import math
import random
import string
import uuid
from datetime import datetime, timedelta

from hub.contracts.detection_v1 import BoundingBox, Detection, DetectionEvent, EventBatch, MediaRef

MODEL_NAME = "demo-synthetic"
MODEL_VERSION = "0.1"
# Box width and height ranges (normalised) per label: people are tall, vehicles wide.
BOX_SIZES = {
    "person": ((0.04, 0.12), (0.15, 0.45)),
    "vehicle": ((0.12, 0.35), (0.08, 0.25)),
}
VEHICLE_TYPES = ("car", "van", "truck", "bus", "motorcycle")


def build_batch(
    rng: random.Random, *, cameras: int, size: int, now: datetime, media: MediaRef | None
) -> EventBatch:
    """A batch of synthetic events captured just before `now`; `media` goes on the first."""
    events = [
        DetectionEvent(
            event_id=uuid.uuid4(),
            camera_id=f"demo-cam-{rng.randint(1, cameras)}",
            captured_at=now - timedelta(seconds=rng.uniform(0.0, 1.0)),
            model_name=MODEL_NAME,
            model_version=MODEL_VERSION,
            detections=_detections(rng),
            media=[media] if media is not None and i == 0 else [],
        )
        for i in range(size)
    ]
    return EventBatch(events=events)


def _detections(rng: random.Random) -> list[Detection]:
    """One to four objects; some vehicles come with a readable plate inside their box."""
    found: list[Detection] = []
    for _ in range(rng.randint(1, 4)):
        label = rng.choices(("person", "vehicle"), weights=(0.55, 0.45))[0]
        track = f"{label[0]}{rng.randint(1, 40)}"
        box = _box(rng, label)
        attributes = {"vehicle_type": rng.choice(VEHICLE_TYPES)} if label == "vehicle" else {}
        found.append(_detection(rng, label, box, track, attributes))
        if label == "vehicle" and rng.random() < 0.6:
            plate = {"plate_text": plate_text(rng)}
            found.append(_detection(rng, "plate", _plate_box(rng, box), track, plate))
    return found


def _detection(
    rng: random.Random, label: str, box: BoundingBox, track: str, attributes: dict[str, str]
) -> Detection:
    return Detection(
        label=label,
        confidence=round(rng.uniform(0.45, 0.99), 3),
        box=box,
        track_id=track,
        attributes=dict(attributes),
    )


def _box(rng: random.Random, label: str) -> BoundingBox:
    """A box of the label's typical size, anywhere inside the frame."""
    (w_low, w_high), (h_low, h_high) = BOX_SIZES[label]
    width, height = rng.uniform(w_low, w_high), rng.uniform(h_low, h_high)
    return _floored(rng.uniform(0.0, 1.0 - width), rng.uniform(0.0, 1.0 - height), width, height)


def _plate_box(rng: random.Random, vehicle: BoundingBox) -> BoundingBox:
    """A plate in the lower middle of its vehicle's box."""
    width, height = vehicle.width * 0.22, vehicle.height * 0.12
    x = vehicle.x + vehicle.width * rng.uniform(0.3, 0.45)
    y = vehicle.y + vehicle.height * rng.uniform(0.7, 0.8)
    return _floored(x, y, width, height)


def _floored(x: float, y: float, width: float, height: float) -> BoundingBox:
    """Round down to 4 decimals, so rounding never pushes a box past the frame."""

    def floor4(v: float) -> float:
        return math.floor(v * 10_000) / 10_000

    return BoundingBox(x=floor4(x), y=floor4(y), width=floor4(width), height=floor4(height))


def plate_text(rng: random.Random) -> str:
    """A plausible plate: two letters, three digits, two letters (AB-123-CD)."""
    letters = string.ascii_uppercase

    def pick(n: int, alphabet: str) -> str:
        return "".join(rng.choice(alphabet) for _ in range(n))

    return f"{pick(2, letters)}-{pick(3, string.digits)}-{pick(2, letters)}"


def _segment(marker: int, payload: bytes) -> bytes:
    """A JPEG marker segment: FF, marker, big-endian length (counting itself), payload."""
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload


def snapshot_jpeg(counter: int) -> bytes:
    """A valid 8x8 mid-grey baseline JPEG; a COM segment with `counter` varies its hash.

    One DC-only block: both Huffman tables hold a single 1-bit code (DC difference 0,
    end-of-block), so the scan is the bits 00 padded with ones.
    """
    jfif = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    quant = b"\x00" + b"\x01" * 64
    frame = b"\x08\x00\x08\x00\x08\x01\x01\x11\x00"
    one_code = b"\x01" + b"\x00" * 15 + b"\x00"
    scan = b"\x01\x01\x00\x00\x3f\x00"
    comment = f"hub edge demo snapshot {counter}".encode()
    return b"".join(
        (
            b"\xff\xd8",
            _segment(0xE0, jfif),
            _segment(0xFE, comment),
            _segment(0xDB, quant),
            _segment(0xC0, frame),
            _segment(0xC4, b"\x00" + one_code),
            _segment(0xC4, b"\x10" + one_code),
            _segment(0xDA, scan),
            b"\x3f",
            b"\xff\xd9",
        )
    )
