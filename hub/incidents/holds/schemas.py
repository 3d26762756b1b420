"""Structs of legal holds."""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec


class HoldCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A new hold: events by id, a camera and capture-time range, or a track."""

    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    incident_id: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    event_ids: Annotated[list[UUID], msgspec.Meta(max_length=10_000)] = []
    camera_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    from_at: datetime | None = None
    to_at: datetime | None = None
    track_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


class HoldRead(msgspec.Struct, frozen=True, kw_only=True):
    """A hold as shown to officers."""

    id: UUID
    reason: str
    incident_id: str | None
    event_ids: list[UUID]
    camera_id: str | None
    from_at: datetime | None
    to_at: datetime | None
    track_id: str | None
    status: Literal["active", "released"]
    created_by: str
    created_at: datetime
    release_requested_by: str | None
    release_requested_at: datetime | None
    released_by: str | None
    released_at: datetime | None
    held_events: int = 0
