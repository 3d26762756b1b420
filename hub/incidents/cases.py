# SQL here is composed only from the module constant _COLUMNS, never from input.
# ruff: noqa: S608
"""Incident cases: create, assign, move through open → investigating → closed, add notes,
link events. Every change writes a timeline row and an audit entry in one transaction.

Linked events and their snapshots are shown to officers only through `release()` under the
console recipient (`compliance-console` in release policy), never as stored.
"""

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

import asyncpg
import msgspec

from hub.audit import AuditEntry, append_entry
from hub.audit.schemas import Detail
from hub.identity.schemas import Subject
from hub.kit.clock import Clock, utcnow
from hub.kit.db import Database
from hub.kit.errors import ConflictError, NotFoundError
from hub.kit.params import NO_NUL
from hub.media import load_image, read_stored
from hub.policy.guard import Decider
from hub.policy.release import Released, release, release_media, withheld_for_now
from hub.policy.schemas import Recipient
from hub.retention import hydrate, process_keys

Status = Literal["open", "investigating", "closed"]
NEXT_STATUS: dict[str, str] = {"open": "investigating", "investigating": "closed"}
CONSOLE_RECIPIENT = "compliance-console"
CONSOLE_PURPOSE = "compliance"
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=10_000, pattern=NO_NUL)]


class IncidentCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A new incident."""

    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NO_NUL)]
    description: Annotated[str, msgspec.Meta(max_length=10_000, pattern=NO_NUL)] = ""


class AssignRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Who works the incident now."""

    assignee: Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=NO_NUL)]


class StatusChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Move to the next status (one step: open → investigating → closed), saying why."""

    status: Status
    note: Annotated[str, msgspec.Meta(max_length=10_000, pattern=NO_NUL)] = ""


class NoteCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A note on the timeline."""

    body: Text


class EventLink(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Link a detection event (by its event id) to the incident."""

    event_id: UUID


class IncidentRead(msgspec.Struct, frozen=True, kw_only=True):
    """An incident's header."""

    id: UUID
    title: str
    description: str
    status: Status
    assignee: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None


class NoteRead(msgspec.Struct, frozen=True, kw_only=True):
    """One timeline row."""

    id: int
    at: datetime
    author: str
    kind: Literal["note", "status", "assign", "link"]
    body: str


class LinkedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A linked event as the officer may see it (record None when release denied it)."""

    event_id: UUID
    captured_at: str | None  # as released (policy may generalise it); None when denied
    linked_at: datetime
    linked_by: str
    allowed: bool
    reason: str
    decision_id: str
    record: dict[str, Any] | None
    media: list[str]


class IncidentDetail(msgspec.Struct, frozen=True, kw_only=True):
    """An incident with its timeline and linked events."""

    incident: IncidentRead
    notes: list[NoteRead]
    events: list[LinkedEvent]


class EventRow(msgspec.Struct, frozen=True, kw_only=True):
    """A linked event with its payload (PII re-hydrated from the vault; None once retention
    removed the event)."""

    event_id: UUID
    captured_at: datetime
    linked_at: datetime
    linked_by: str
    payload: str | None


_COLUMNS = "id, title, description, status, assignee, created_by, created_at, updated_at, closed_at"


def console_recipient(subject: Subject) -> Recipient:
    """The release recipient of an officer using the console (their own jurisdictions and
    clearance, narrowed again by the policy's entry for the console)."""
    return Recipient(
        id=CONSOLE_RECIPIENT,
        kind="user",
        jurisdictions=subject.jurisdictions,
        clearance=subject.clearance,
    )


async def create_incident(
    db: Database,
    create: IncidentCreate,
    *,
    actor: str,
    decision_id: str | None,
    clock: Clock = utcnow,
) -> IncidentRead:
    """Open a new incident."""
    now = clock()
    async with db.transaction() as conn:
        row = await conn.fetchrow(
            f"""INSERT INTO incident (id, title, description, created_by, created_at, updated_at)
                VALUES ($1, $2, $3, $4, $5, $5) RETURNING {_COLUMNS}""",
            uuid4(),
            create.title,
            create.description,
            actor,
            now,
        )
        incident = _incident(row)
        await _audit(
            conn, actor, "incident.create", incident.id, {"title": create.title}, decision_id
        )
    return incident


async def list_incidents(db: Database, *, status: str | None) -> list[IncidentRead]:
    """Incidents, newest first, optionally of one status."""
    # On a replica within the lag bound (ADR 0016): a list to pick from writes nothing, and
    # every change to an incident reads it again on the primary under a lock (`_locked`).
    async with db.reader() as conn:
        rows = await conn.fetch(
            f"""SELECT {_COLUMNS} FROM incident WHERE ($1::text IS NULL OR status = $1)
                ORDER BY created_at DESC LIMIT 500""",
            status,
        )
    return [_incident(r) for r in rows]


async def assign_incident(
    db: Database, incident_id: UUID, data: AssignRequest, *, actor: str, decision_id: str | None
) -> IncidentRead:
    """Hand the incident to someone."""
    async with db.transaction() as conn:
        incident = await _locked(conn, incident_id)
        if incident.status == "closed":
            raise ConflictError("the incident is closed", code="incident_closed")
        row = await conn.fetchrow(
            f"""UPDATE incident SET assignee = $2, updated_at = now() WHERE id = $1
                RETURNING {_COLUMNS}""",
            incident_id,
            data.assignee,
        )
        await _note(conn, incident_id, actor, "assign", f"assigned to {data.assignee}")
        await _audit(
            conn, actor, "incident.assign", incident_id, {"assignee": data.assignee}, decision_id
        )
    return _incident(row)


async def change_status(
    db: Database, incident_id: UUID, data: StatusChange, *, actor: str, decision_id: str | None
) -> IncidentRead:
    """Move one step along open → investigating → closed; anything else is 409."""
    async with db.transaction() as conn:
        incident = await _locked(conn, incident_id)
        if NEXT_STATUS.get(incident.status) != data.status:
            raise ConflictError(
                f"an incident that is {incident.status} cannot become {data.status}",
                code="incident_status",
            )
        row = await conn.fetchrow(
            f"""UPDATE incident SET status = $2, updated_at = now(),
                   closed_at = CASE WHEN $2 = 'closed' THEN now() END
                WHERE id = $1 RETURNING {_COLUMNS}""",
            incident_id,
            data.status,
        )
        body = f"{incident.status} → {data.status}" + (f": {data.note}" if data.note else "")
        await _note(conn, incident_id, actor, "status", body)
        await _audit(
            conn,
            actor,
            "incident.status",
            incident_id,
            {"from": incident.status, "to": data.status},
            decision_id,
        )
    return _incident(row)


async def add_note(
    db: Database, incident_id: UUID, data: NoteCreate, *, actor: str, decision_id: str | None
) -> NoteRead:
    """Add a note to the timeline (closed incidents take notes too: they explain)."""
    async with db.transaction() as conn:
        await _locked(conn, incident_id)
        note = await _note(conn, incident_id, actor, "note", data.body)
        await _audit(conn, actor, "incident.note", incident_id, {"note_id": note.id}, decision_id)
    return note


async def link_event(
    db: Database, incident_id: UUID, data: EventLink, *, actor: str, decision_id: str | None
) -> NoteRead:
    """Link a stored detection event; 404 when no such event is stored."""
    async with db.transaction() as conn:
        incident = await _locked(conn, incident_id)
        if incident.status == "closed":
            raise ConflictError("the incident is closed", code="incident_closed")
        event = await conn.fetchrow(
            "SELECT id, captured_at FROM detection_event WHERE event_id = $1 LIMIT 1", data.event_id
        )
        if event is None:
            raise NotFoundError(f"no stored event {data.event_id}", code="event_not_found")
        await conn.execute(
            """INSERT INTO incident_event (incident_id, event_id, event_pk, captured_at, linked_by)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
            incident_id,
            data.event_id,
            event["id"],
            event["captured_at"],
            actor,
        )
        note = await _note(conn, incident_id, actor, "link", f"linked event {data.event_id}")
        await _audit(
            conn, actor, "incident.link", incident_id, {"event_id": str(data.event_id)}, decision_id
        )
    return note


async def incident_detail(
    db: Database, policy: Decider, incident_id: UUID, *, subject: Subject, hash_key: bytes
) -> IncidentDetail:
    """The incident, its timeline and its events as released to this officer."""
    incident, notes, rows = await _read_all(db, incident_id)
    recipient = console_recipient(subject)
    events = []
    for row in rows:
        released = await _release_row(policy, row, recipient, "detection_event", hash_key)
        events.append(_linked(row, released))
    return IncidentDetail(incident=incident, notes=notes, events=events)


async def incident_media(
    db: Database,
    policy: Decider,
    incident_id: UUID,
    sha256: str,
    *,
    subject: Subject,
    hash_key: bytes,
    media_root: str,
) -> tuple[bytes, str, str]:
    """A snapshot of a linked event as this officer may see it (blurred), its type and the
    release decision id; 404 when no linked event carries it or release withholds it, 503
    while it waits for the hub's scan or policy is unavailable."""
    _, _, rows = await _read_all(db, incident_id)
    shown = await release_linked_media(
        db, policy, rows, sha256, subject=subject, hash_key=hash_key, media_root=media_root
    )
    if shown is None:
        raise NotFoundError("no releasable image of a linked event", code="media_not_found")
    return shown


async def release_linked_media(
    db: Database,
    policy: Decider,
    rows: list[EventRow],
    sha256: str,
    *,
    subject: Subject,
    hash_key: bytes,
    media_root: str,
) -> tuple[bytes, str, str] | None:
    """An image as released to the officer through the linked events that reference it
    (blurred by every region known on it), its type and the granting decision id; None when
    withheld for good. Raises 503 (`withheld_for_now`) when it may be released later."""
    linked = [row for row in rows if sha256 in media_of(row)]
    image = await load_image(db, sha256=sha256) if linked else None
    if image is None:
        return None
    recipient = console_recipient(subject)
    decisions = [await _release_row(policy, r, recipient, "snapshot", hash_key) for r in linked]
    data = await asyncio.to_thread(read_stored, media_root, image.storage_path)
    shown = await release_media(decisions, image=image, data=data)
    granted = next((d for d in decisions if d.allowed), None)
    if shown is None or granted is None:
        later = withheld_for_now(decisions, image=image)
        if later is not None:
            raise later
        return None
    return shown, image.content_type, granted.decision_id


async def read_for_export(
    db: Database, incident_id: UUID
) -> tuple[IncidentRead, list[NoteRead], list[EventRow]]:
    """Header, timeline and linked event rows (payloads re-hydrated) for the evidence export."""
    return await _read_all(db, incident_id)


async def release_event(
    policy: Decider, row: EventRow, *, subject: Subject, data_class: str, hash_key: bytes
) -> Released:
    """Release one linked event to the officer."""
    return await _release_row(policy, row, console_recipient(subject), data_class, hash_key)


def media_of(row: EventRow) -> list[str]:
    """The snapshot hashes an event row refers to."""
    return [] if row.payload is None else _media_of(row.payload)


async def _read_all(
    db: Database, incident_id: UUID
) -> tuple[IncidentRead, list[NoteRead], list[EventRow]]:
    async with db.transaction() as conn:
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM incident WHERE id = $1", incident_id)
        if row is None:
            raise NotFoundError(f"no incident {incident_id}", code="incident_not_found")
        notes = await conn.fetch(
            """SELECT id, at, author, kind, body FROM incident_note
               WHERE incident_id = $1 ORDER BY id""",
            incident_id,
        )
        events = await conn.fetch(
            """SELECT l.event_id, l.captured_at, l.linked_at, l.linked_by,
                      e.payload::text AS payload
               FROM incident_event l LEFT JOIN detection_event e
                 ON e.id = l.event_pk AND e.captured_at = l.captured_at
               WHERE l.incident_id = $1 ORDER BY l.linked_at""",
            incident_id,
        )
    return (
        _incident(row),
        [NoteRead(**dict(n)) for n in notes],
        await _hydrated([EventRow(**dict(e)) for e in events], db),
    )


async def _hydrated(rows: list[EventRow], db: Database) -> list[EventRow]:
    """Rows whose payloads carry their PII again, from the vault (one query for them all)."""
    stored = [(n, msgspec.json.decode(r.payload)) for n, r in enumerate(rows) if r.payload]
    records = await hydrate(db.pool, process_keys, [record for _, record in stored])
    shown = list(rows)
    for (n, _), record in zip(stored, records, strict=True):
        shown[n] = msgspec.structs.replace(rows[n], payload=msgspec.json.encode(record).decode())
    return shown


async def _release_row(
    policy: Decider, row: EventRow, recipient: Recipient, data_class: str, hash_key: bytes
) -> Released:
    if row.payload is None:
        return Released(
            decision_id="",
            allowed=False,
            reason="event no longer stored",
            record=None,
            manifest=[],
            media=[],
        )
    return await release(
        policy,
        recipient=recipient,
        purpose=CONSOLE_PURPOSE,
        data_class=data_class,
        record=msgspec.json.decode(row.payload),
        hash_master_key=hash_key,
    )


def _linked(row: EventRow, released: Released) -> LinkedEvent:
    return LinkedEvent(
        event_id=row.event_id,
        captured_at=_released_time(released),
        linked_at=row.linked_at,
        linked_by=row.linked_by,
        allowed=released.allowed,
        reason=released.reason,
        decision_id=released.decision_id,
        record=released.record,
        media=media_of(row) if released.allowed else [],
    )


def _released_time(released: Released) -> str | None:
    """The capture time as the released record carries it (never the stored one)."""
    value = (released.record or {}).get("captured_at")
    return value if isinstance(value, str) else None


def _media_of(payload: str) -> list[str]:
    media = msgspec.json.decode(payload).get("media") or []
    return [str(m["sha256"]) for m in media if isinstance(m, dict) and "sha256" in m]


async def _locked(conn: asyncpg.Connection, incident_id: UUID) -> IncidentRead:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM incident WHERE id = $1 FOR UPDATE", incident_id
    )
    if row is None:
        raise NotFoundError(f"no incident {incident_id}", code="incident_not_found")
    return _incident(row)


async def _note(
    conn: asyncpg.Connection, incident_id: UUID, author: str, kind: str, body: str
) -> NoteRead:
    row = await conn.fetchrow(
        """INSERT INTO incident_note (incident_id, author, kind, body) VALUES ($1, $2, $3, $4)
           RETURNING id, at, author, kind, body""",
        incident_id,
        author,
        kind,
        body,
    )
    return NoteRead(**dict(row))


async def _audit(
    conn: asyncpg.Connection,
    actor: str,
    action: str,
    incident_id: UUID,
    detail: Detail,
    decision_id: str | None,
) -> None:
    await append_entry(
        conn,
        AuditEntry(
            actor=actor,
            action=action,
            target=f"incident:{incident_id}",
            detail=detail,
            decision_id=decision_id,
        ),
    )


def _incident(row: asyncpg.Record) -> IncidentRead:
    return IncidentRead(**dict(row))
