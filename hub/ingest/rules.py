"""Pure rules of ingest: what to do with each event of a batch before touching storage."""

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import msgspec

from hub.contracts.detection_v1 import DetectionEvent, EventResult

# Canonical JSON: keys sorted. One encoder for every call: `msgspec.json.encode(x,
# order="sorted")` sets one up per call, which cost a third of encoding an event.
CANONICAL = msgspec.json.Encoder(order="sorted")


class PreparedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event ready to store: its canonical payload, the hash a re-send must match and the
    jurisdiction its camera has in the registry (stamped on the stored record).

    `classes` (its distinct labels, sorted) and `best` (its highest confidence) are read by
    policy, the stored row and the index columns: worked out here once per event. A Struct,
    not a frozen dataclass: one is made per event, and the dataclass's `__init__` (a Python
    `object.__setattr__` per field) was ~1 % of an ingesting API worker's CPU (py-spy)."""

    event: DetectionEvent
    payload: bytes
    content_sha256: bytes
    classes: tuple[str, ...]
    best: float
    jurisdiction: str | None = None


@dataclass(frozen=True, slots=True)
class Screen:
    """What every event of a batch is checked against before storage.

    `cameras` maps each camera the uploading node owns (of those in the batch) to its
    registered jurisdiction; capture times must lie in [`oldest`, `latest`].
    """

    cameras: Mapping[str, str]
    oldest: datetime
    latest: datetime
    max_age: timedelta

    @classmethod
    def at(
        cls,
        now: datetime,
        *,
        cameras: Mapping[str, str],
        future_tolerance: timedelta,
        max_age: timedelta,
    ) -> "Screen":
        """The window around `now` (the hub's clock, passed in)."""
        return cls(
            cameras=cameras,
            oldest=now - max_age,
            latest=now + future_tolerance,
            max_age=max_age,
        )


def prepare(event: DetectionEvent, *, jurisdiction: str | None = None) -> PreparedEvent:
    """Canonical JSON (sorted keys) and its SHA-256, so re-sends compare byte for byte."""
    payload = CANONICAL.encode(event)
    detections = event.detections
    if len(detections) == 1:  # the common case, without a set and a sort
        only = detections[0]
        classes: tuple[str, ...] = (only.label,)
        best = only.confidence
    else:
        classes = tuple(sorted({d.label for d in detections}))
        best = max(d.confidence for d in detections)
    return PreparedEvent(
        event=event,
        payload=payload,
        content_sha256=hashlib.sha256(payload).digest(),
        jurisdiction=jurisdiction,
        classes=classes,
        best=best,
    )


def screen(
    events: list[DetectionEvent], *, rules: Screen
) -> tuple[list[PreparedEvent], dict[int, EventResult]]:
    """Split a batch into events to store and per-position verdicts decided without storage.

    Returns the events to store and, by position in the batch, the results already decided:
    a repeated id in the same batch is `duplicate` (or `rejected` if its content differs); an
    event for a camera its node does not own, or captured outside the window, is `rejected`.
    One event's verdict never affects another's.
    """
    # Keyed by the id's integer: a UUID hashes through a Python method, an int does not.
    seen: dict[int, bytes] = {}
    keep: list[PreparedEvent] = []
    decided: dict[int, EventResult] = {}
    for position, event in enumerate(events):
        prepared = prepare(event, jurisdiction=rules.cameras.get(event.camera_id))
        key = event.event_id.int
        earlier = seen.get(key)
        if earlier is not None:
            decided[position] = _repeat_verdict(
                event.event_id, same=earlier == prepared.content_sha256
            )
            continue
        reason = refusal(event, rules=rules)
        if reason is not None:
            decided[position] = EventResult(
                event_id=event.event_id, status="rejected", reason=reason
            )
            continue
        seen[key] = prepared.content_sha256
        keep.append(prepared)
    return keep, decided


CAMERA_NOT_REGISTERED = "is not registered to this node"
FUTURE = "captured_at is in the future"
TOO_OLD = "captured_at is older than"


def refusal(event: DetectionEvent, *, rules: Screen) -> str | None:
    """Why one event may not be stored, or None: its camera must be registered to the node
    that sent it, and its capture time must lie inside the window."""
    if event.camera_id not in rules.cameras:
        return f"camera {event.camera_id} {CAMERA_NOT_REGISTERED}"
    if event.captured_at > rules.latest:
        return FUTURE
    if event.captured_at < rules.oldest:
        return f"{TOO_OLD} {_days(rules.max_age)} (HUB_INGEST_MAX_AGE_DAYS)"
    return None


# The contract's label pattern, for one string of labels joined by newlines (a label cannot
# hold one, so a newline smuggled into a label fails this and goes to the contract's check).
_LABELS = re.compile(r"[a-z0-9_.\-]+(?:\n[a-z0-9_.\-]+)*")
# A NUL can only reach a decoded string as this escape: JSON forbids a raw control character
# in a string, and msgspec refuses one.
_NUL_ESCAPE = b"\\u0000"


def unchecked_text_valid(body: bytes, events: Iterable[DetectionEvent]) -> bool:
    """Whether the events decoded from `body` without the contract's label and no-NUL
    patterns (`hub.ingest.schemas`) meet them anyway: no NUL anywhere in the body, and every
    label, attribute name and redacted class a label. False sends the body to the contract's
    own types, which decide event by event (so a false alarm costs time, never a verdict)."""
    if _NUL_ESCAPE in body:
        return False
    labels: set[str] = set()
    for event in events:
        for detection in event.detections:
            labels.add(detection.label)
            if detection.attributes:
                labels.update(detection.attributes)
        for media in event.media:
            if media.redacted_classes is not msgspec.UNSET:
                labels.update(media.redacted_classes)
    return _LABELS.fullmatch("\n".join(labels)) is not None


def verdict_for_existing(
    event_id: UUID, *, stored_sha256: bytes, sent_sha256: bytes
) -> EventResult:
    """A re-sent event gets the same answer as the first time, unless its content changed."""
    if stored_sha256 == sent_sha256:
        return EventResult(event_id=event_id, status="accepted")
    return EventResult(
        event_id=event_id, status="rejected", reason="event_id already used for different content"
    )


def _repeat_verdict(event_id: UUID, *, same: bool) -> EventResult:
    if same:
        return EventResult(event_id=event_id, status="duplicate")
    return EventResult(
        event_id=event_id,
        status="rejected",
        reason="event_id repeated in the batch with different content",
    )


def _days(age: timedelta) -> str:
    return "1 day" if age == timedelta(days=1) else f"{age / timedelta(days=1):g} days"
