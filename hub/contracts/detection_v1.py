"""`hub.detection.v1`: the detection event an edge node uploads.

This module imports nothing else of the hub, so `edge/` can depend on it alone. A change
that breaks a consumer is a new module (`detection_v2`) served side by side, never an edit.
"""

import re
from datetime import datetime
from typing import Annotated, Final, Literal
from uuid import UUID

import msgspec

SCHEMA_ID: Final = "hub.detection.v1"

Unit = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Sha256Hex = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9_.\-]+$")]
# No NUL (U+0000) in any text: PostgreSQL cannot store it, and the schema says so.
NO_NUL: Final = r"^[^\x00]*$"
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=NO_NUL)]
AttributeValue = Annotated[str, msgspec.Meta(max_length=256, pattern=NO_NUL)] | int | float | bool

_CAMERA = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")


class BoundingBox(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A box in normalised image coordinates (0..1), origin top-left."""

    x: Unit
    y: Unit
    width: Unit
    height: Unit

    def __post_init__(self) -> None:
        # A small tolerance: detectors round, and 0.6 + 0.4 is not exactly 1.0 in binary.
        if self.x + self.width > 1.0 + 1e-6 or self.y + self.height > 1.0 + 1e-6:
            raise ValueError("box must lie inside the image (x + width <= 1, y + height <= 1)")


class Detection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One detected object: class, confidence, where, and optional track and attributes."""

    label: Label
    confidence: Unit
    box: BoundingBox
    track_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_NUL)] | None = (
        None
    )
    # e.g. {"plate_text": "AB-123-CD"}; personal data, encrypted and redacted downstream.
    attributes: Annotated[dict[Label, AttributeValue], msgspec.Meta(max_length=32)] = {}


class MediaRef(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A snapshot or crop uploaded separately through `POST /v1/edge/media`."""

    sha256: Sha256Hex
    kind: Literal["snapshot", "crop"] = "snapshot"
    content_type: Literal["image/jpeg", "image/png"] = "image/jpeg"
    # Classes the edge burned into this image before upload (redaction at the source): every
    # detection of these classes that the node's detectors found is unrecoverable in it.
    # Optional and left out when unset, so events without it keep their canonical JSON (and
    # the hash a re-send is compared by) exactly as before the field existed.
    redacted_classes: Annotated[list[Label], msgspec.Meta(max_length=32)] | msgspec.UnsetType = (
        msgspec.UNSET
    )

    def classes_redacted(self) -> frozenset[str]:
        """The classes redacted at the source (empty when the edge says nothing)."""
        return frozenset(() if self.redacted_classes is msgspec.UNSET else self.redacted_classes)


class DetectionEvent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One event: what a camera saw at one moment, as decided by one model."""

    event_id: UUID
    camera_id: Annotated[str, msgspec.Meta(pattern=_CAMERA.pattern)]
    # RFC 3339 with an offset; naive times are refused rather than guessed.
    captured_at: Annotated[datetime, msgspec.Meta(tz=True)]
    model_name: ShortText
    model_version: ShortText
    detections: Annotated[list[Detection], msgspec.Meta(min_length=1, max_length=256)]
    media: Annotated[list[MediaRef], msgspec.Meta(max_length=8)] = []


class EventBatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of `POST /v1/edge/events`: 1 to 500 events."""

    events: Annotated[list[DetectionEvent], msgspec.Meta(min_length=1, max_length=500)]
    schema: Literal["hub.detection.v1"] = SCHEMA_ID


EventStatus = Literal["accepted", "duplicate", "rejected"]


class EventResult(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What the hub did with one event of a batch.

    `accepted`: the hub holds it (now or from an earlier send; a re-send gets the same
    answer). `duplicate`: the same event id appeared earlier in this batch. `rejected`: not
    stored; `reason` says why (a capture time in the future may be accepted once it has
    passed; a reused event id with other content never will).
    """

    event_id: UUID
    status: EventStatus
    reason: str | None = None


class BatchResult(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a batch: one result per event, in request order, and the counts."""

    results: list[EventResult]
    accepted: int
    duplicate: int
    rejected: int


def json_schema() -> dict[str, object]:
    """The JSON Schema of a batch (exported to `schemas/` by `make schemas`)."""
    schema: dict[str, object] = msgspec.json.schema(EventBatch)
    schema["$id"] = f"urn:{SCHEMA_ID}"
    schema["title"] = SCHEMA_ID
    return schema
