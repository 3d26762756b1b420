"""Structs that cross the feeds' boundaries: pages, items, live messages, notices, acks."""

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import msgspec


class FeedFilters(msgspec.Struct, frozen=True, kw_only=True):
    """What a reader wants: capture time in [since, until), any of `classes`, any of
    `cameras` (empty lists mean everything)."""

    since: datetime | None = None
    until: datetime | None = None
    classes: list[str] = []
    cameras: list[str] = []


class FeedItem(msgspec.Struct, frozen=True, kw_only=True):
    """One released event: its feed position (hub-wide inside the hub; the agency's own
    pseudonym of it once shown, ADR 0042), the release decision and the redacted record."""

    seq: int
    event_id: UUID
    decision_id: str
    record: dict[str, Any]


class FeedPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of the REST feed. `next_cursor` always moves past every event the page looked
    at, including those policy withheld, so paging on never stalls on a denial."""

    items: list[FeedItem]
    next_cursor: str
    has_more: bool


class LiveEvent(msgspec.Struct, frozen=True, kw_only=True, tag="event", tag_field="type"):
    """One event pushed over `WS /v1/feeds/live`; `cursor` resumes the REST feed after it."""

    seq: int
    event_id: UUID
    decision_id: str
    record: dict[str, Any]
    cursor: str


class FeedNotice(msgspec.Struct, frozen=True, array_like=True):
    """Published on Redis after positions were assigned: the range, never a record."""

    first: int
    last: int


class AckResult(msgspec.Struct, frozen=True, kw_only=True):
    """What `Acknowledge` recorded: newly acknowledged positions and repeats."""

    acknowledged: int
    already_acknowledged: int


class PositionRead(msgspec.Struct, frozen=True, kw_only=True):
    """What one position of an agency's feed stands for: the number the agency was shown,
    the hub-wide position the audit log names, and the event while the hub keeps it."""

    agency: str
    shown: int
    seq: int
    event_id: UUID | None
    captured_at: datetime | None


Channel = Literal["rest", "soap", "live", "media"]
