"""From tracker sightings to `hub.detection.v1` events and their JPEG snapshots."""

import hashlib
import io
import math
import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from PIL import Image as PILImage

from edge.detectors.base import Found, Image
from edge.spool import Snapshot
from edge.tracker import Sighting
from hub.contracts.detection_v1 import BoundingBox, Detection, DetectionEvent

MAX_DETECTIONS = 256  # the contract's limit per event
MAX_CROPS = 7  # plus the frame: the contract allows 8 media per event
_NOT_LABEL = re.compile(r"[^a-z0-9_.\-]+")


def build_event(
    sightings: Sequence[Sighting],
    *,
    camera_id: str,
    captured_at: datetime,
    model_name: str,
    model_version: str,
    frame_size: tuple[int, int],
    redacted: frozenset[str] = frozenset(),
) -> DetectionEvent:
    """One event holding the frame's reportable detections (without media; the spool adds
    references to the snapshots stored with it). Detections of `redacted` classes (redaction
    at the source) keep their class, box and track but no attributes (no plate text, no
    landmarks): what was burned out of the pixels does not travel as text."""
    detections = [
        Detection(
            label=label_of(s.found.label),
            confidence=_floor4(min(max(s.found.confidence, 0.0), 1.0)),
            box=normalised_box(s.found.box, frame_size),
            track_id=s.track_id,
            attributes=(
                {}
                if s.found.label in redacted
                else {label_of(k): v for k, v in s.found.attributes.items()}
            ),
        )
        for s in sightings[:MAX_DETECTIONS]
    ]
    return DetectionEvent(
        # Random, never time-ordered: agencies receive this id even where release policy
        # coarsens the capture time (ADR 0041).
        event_id=uuid.uuid4(),
        camera_id=camera_id,
        captured_at=captured_at,
        model_name=model_name[:128],
        model_version=model_version[:128],
        detections=detections,
    )


def label_of(text: str) -> str:
    """`text` as a contract label: lower case, only [a-z0-9_.-], 1 to 64 characters."""
    return _NOT_LABEL.sub("_", text.lower())[:64] or "object"


def normalised_box(
    box: tuple[float, float, float, float], frame_size: tuple[int, int]
) -> BoundingBox:
    """A pixel box as a normalised one, rounded down so it never leaves the frame."""
    width, height = frame_size
    x1, y1 = min(max(box[0] / width, 0.0), 1.0), min(max(box[1] / height, 0.0), 1.0)
    x2, y2 = min(max(box[2] / width, x1), 1.0), min(max(box[3] / height, y1), 1.0)
    return BoundingBox(
        x=_floor4(x1), y=_floor4(y1), width=_floor4(x2 - x1), height=_floor4(y2 - y1)
    )


def snapshots_for(
    image: Image,
    found: Sequence[Found],
    *,
    crops: bool,
    quality: int = 80,
    max_side: int = 1280,
    redacted: Iterable[str] = (),
) -> list[Snapshot]:
    """A JPEG of the frame, and with `crops` one per detection (up to the contract's limit).

    `redacted` names the classes already burned into `image` (redaction at the source); each
    snapshot says so, and the upload carries it (`MediaRef.redacted_classes`)."""
    picture = PILImage.fromarray(image)
    classes = tuple(sorted(set(redacted)))
    shots = [_jpeg(picture, "snapshot", quality=quality, max_side=max_side, redacted=classes)]
    if crops:
        for item in found[:MAX_CROPS]:
            x1, y1, x2, y2 = (int(v) for v in item.box)
            if x2 - x1 >= 2 and y2 - y1 >= 2:
                region = picture.crop((x1, y1, x2, y2))
                shot = _jpeg(region, "crop", quality=quality, max_side=max_side, redacted=classes)
                shots.append(shot)
    return shots


def _jpeg(
    picture: PILImage.Image, kind: str, *, quality: int, max_side: int, redacted: tuple[str, ...]
) -> Snapshot:
    if max(picture.size) > max_side:
        picture = picture.copy()
        picture.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality)
    data = buffer.getvalue()
    return Snapshot(
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
        kind="crop" if kind == "crop" else "snapshot",
        redacted_classes=redacted,
    )


def _floor4(value: float) -> float:
    return math.floor(value * 10_000) / 10_000
