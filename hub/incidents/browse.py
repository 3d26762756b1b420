"""Events an officer may link to an incident, browsed rather than pasted: the newest stored
events, each released to the officer as the console recipient (the same release as a linked
event's), and their snapshots blurred by that release. Nothing here bypasses `release()`.
"""

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from hub.identity.schemas import Subject
from hub.incidents.cases import (
    EventRow,
    media_of,
    release_event,
    release_linked_media,
)
from hub.kit.db import Database
from hub.kit.errors import NotFoundError
from hub.policy.guard import Decider
from hub.retention import hydrate, process_keys

MEDIA_EVENTS = 20  # events consulted for one image (every one that references it, up to this)


class CandidateEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A stored event as the officer may see it (record None when release denied it)."""

    event_id: UUID
    captured_at: str | None  # as released (policy may generalise it)
    allowed: bool
    reason: str
    decision_id: str
    record: dict[str, Any] | None
    media: list[str]


async def browse_events(
    db: Database,
    policy: Decider,
    *,
    subject: Subject,
    hash_key: bytes,
    since: datetime,
    camera_id: str | None,
    limit: int,
) -> list[CandidateEvent]:
    """The newest accepted events since `since` (of one camera, if given), each released.

    A browsing list: the rows may come from a replica within the lag bound (ADR 0016); PII is
    hydrated from the primary's vault, so a subject forgotten a moment ago stays forgotten."""
    async with db.reader() as conn:
        rows = await conn.fetch(
            """SELECT event_id, captured_at, received_at AS linked_at, '' AS linked_by,
                  payload::text AS payload
           FROM detection_event
           WHERE disposition = 'accepted' AND received_at >= $1
             AND ($2::text IS NULL OR camera_id = $2)
           ORDER BY received_at DESC, event_id LIMIT $3""",
            since,
            camera_id,
            limit,
        )
    found = await _hydrated(db, [EventRow(**dict(r)) for r in rows])
    return [await _candidate(policy, row, subject=subject, hash_key=hash_key) for row in found]


async def candidate_media(
    db: Database,
    policy: Decider,
    sha256: str,
    *,
    subject: Subject,
    hash_key: bytes,
    media_root: str,
) -> tuple[bytes, str, str]:
    """A snapshot as released to the officer through the events that reference it; 404 when
    withheld for good, 503 while it waits for the hub's scan."""
    rows = await db.pool.fetch(
        """SELECT event_id, captured_at, received_at AS linked_at, '' AS linked_by,
                  payload::text AS payload
           FROM detection_event
           WHERE disposition = 'accepted' AND media_sha256 @> ARRAY[$1]::text[]
           ORDER BY received_at DESC LIMIT $2""",
        sha256,
        MEDIA_EVENTS,
    )
    found = await _hydrated(db, [EventRow(**dict(r)) for r in rows])
    shown = await release_linked_media(
        db, policy, found, sha256, subject=subject, hash_key=hash_key, media_root=media_root
    )
    if shown is None:
        raise NotFoundError("no releasable image of a stored event", code="media_not_found")
    return shown


async def _candidate(
    policy: Decider, row: EventRow, *, subject: Subject, hash_key: bytes
) -> CandidateEvent:
    released = await release_event(
        policy, row, subject=subject, data_class="detection_event", hash_key=hash_key
    )
    captured = (released.record or {}).get("captured_at")
    return CandidateEvent(
        event_id=row.event_id,
        captured_at=captured if isinstance(captured, str) else None,
        allowed=released.allowed,
        reason=released.reason,
        decision_id=released.decision_id,
        record=released.record,
        media=media_of(row) if released.allowed else [],
    )


async def _hydrated(db: Database, rows: list[EventRow]) -> list[EventRow]:
    """Rows whose payloads carry their PII again, from the vault (one query for them all)."""
    stored = [(n, msgspec.json.decode(r.payload)) for n, r in enumerate(rows) if r.payload]
    records = await hydrate(db.pool, process_keys, [record for _, record in stored])
    shown = list(rows)
    for (n, _), record in zip(stored, records, strict=True):
        shown[n] = msgspec.structs.replace(rows[n], payload=msgspec.json.encode(record).decode())
    return shown
