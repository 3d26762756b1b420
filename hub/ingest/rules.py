"""Pure rules of ingest: what to do with each event of a batch before touching storage."""

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import msgspec

from hub.contracts.detection_v1 import DetectionEvent, EventResult


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """An event ready to store: its canonical payload and the hash a re-send must match."""

    event: DetectionEvent
    payload: bytes
    content_sha256: bytes


def prepare(event: DetectionEvent) -> PreparedEvent:
    """Canonical JSON (sorted keys) and its SHA-256, so re-sends compare byte for byte."""
    payload = msgspec.json.encode(event, order="sorted")
    return PreparedEvent(
        event=event, payload=payload, content_sha256=hashlib.sha256(payload).digest()
    )


def screen(
    events: list[DetectionEvent], *, now: datetime, future_tolerance: timedelta
) -> tuple[list[PreparedEvent], dict[int, EventResult]]:
    """Split a batch into events to store and per-position verdicts decided without storage.

    Returns the events to store and, by position in the batch, the results already decided:
    a repeated id in the same batch is `duplicate` (or `rejected` if its content differs),
    a capture time beyond the clock-skew tolerance is `rejected`.
    """
    seen: dict[UUID, bytes] = {}
    keep: list[PreparedEvent] = []
    decided: dict[int, EventResult] = {}
    latest = now + future_tolerance
    for position, event in enumerate(events):
        prepared = prepare(event)
        earlier = seen.get(event.event_id)
        if earlier is not None:
            decided[position] = _repeat_verdict(
                event.event_id, same=earlier == prepared.content_sha256
            )
        elif event.captured_at > latest:
            decided[position] = EventResult(
                event_id=event.event_id, status="rejected", reason="captured_at is in the future"
            )
        else:
            seen[event.event_id] = prepared.content_sha256
            keep.append(prepared)
    return keep, decided


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
