"""How an ingest request body is decoded: the contract's types, and a faster twin of them.

msgspec checks a `pattern` by calling Python's `re` once per string: a 100-event batch holds
~450 strings under the contract's "no NUL" and label patterns, and those calls were about two
thirds of decoding it (0.5-0.7 of ~0.9 ms). The `Unchecked*` types below are the contract's
types (subclasses: what they decode *is* a `DetectionEvent`, and encodes to the same canonical
JSON) with those two patterns left out and every other constraint kept. A batch they decode
counts only after `rules.unchecked_text_valid` has checked, for the whole body at once, what
they skipped; otherwise the body is decoded again with the contract's own types, which judge
each event and name the offending field.
"""

from typing import Annotated, Literal

import msgspec

from hub.contracts.detection_v1 import (
    SCHEMA_ID,
    Detection,
    DetectionEvent,
    MediaRef,
)

# The contract's `Label` and no-NUL texts without their patterns (lengths kept).
_Label = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
_AttributeValue = Annotated[str, msgspec.Meta(max_length=256)] | int | float | bool


class UncheckedDetection(Detection, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`Detection` without the label and no-NUL patterns (checked afterwards, batch-wide)."""

    label: _Label
    track_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    # msgspec copies an empty mutable default per instance (ruff cannot tell for a subclass).
    attributes: Annotated[dict[_Label, _AttributeValue], msgspec.Meta(max_length=32)] = {}  # noqa: RUF012


class UncheckedMediaRef(MediaRef, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`MediaRef` without the label pattern on `redacted_classes`."""

    redacted_classes: Annotated[list[_Label], msgspec.Meta(max_length=32)] | msgspec.UnsetType = (
        msgspec.UNSET
    )


class UncheckedEvent(DetectionEvent, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`DetectionEvent` without the label and no-NUL patterns (the camera's pattern stays)."""

    model_name: _ShortText
    model_version: _ShortText
    # Lists of the subclasses: mypy reads these as narrowing an invariant list, which is
    # what they do (every item is also the contract's type).
    detections: Annotated[  # type: ignore[assignment]
        list[UncheckedDetection], msgspec.Meta(min_length=1, max_length=256)
    ]
    # (msgspec copies the empty default per instance.)
    media: Annotated[list[UncheckedMediaRef], msgspec.Meta(max_length=8)] = []  # type: ignore[assignment]  # noqa: RUF012


class UncheckedBatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A batch decoded in one pass with the unchecked types (the common, all-valid case)."""

    events: Annotated[list[UncheckedEvent], msgspec.Meta(min_length=1, max_length=500)]
    schema: Literal["hub.detection.v1"] = SCHEMA_ID


class Envelope(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A batch whose events are still raw JSON: each is validated on its own."""

    events: Annotated[list[msgspec.Raw], msgspec.Meta(min_length=1, max_length=500)]
    schema: Literal["hub.detection.v1"] = SCHEMA_ID
