"""Use cases of legal holds: place, list, and release with four eyes.

Releasing takes two different officers: the first call records a release request, a call by
someone else confirms it. Each step is audited; the hold's held-event count goes along.
"""

import uuid
from uuid import UUID

import asyncpg

from hub.audit import AuditEntry, append_entry
from hub.incidents.holds import repository
from hub.incidents.holds.schemas import HoldCreate, HoldRead
from hub.kit.clock import Clock, utcnow
from hub.kit.db import Database
from hub.kit.errors import ConflictError, NotFoundError, ValidationError


def _check_scope(hold: HoldCreate) -> None:
    """Exactly one scope: ids, camera + range, or track (optionally on one camera)."""
    by_ids = bool(hold.event_ids)
    by_range = hold.camera_id is not None and hold.from_at is not None and hold.to_at is not None
    by_track = hold.track_id is not None
    if by_ids + (by_range and not by_track) + by_track != 1:
        raise ValidationError(
            "a hold covers event_ids, or camera_id with from_at and to_at, or track_id",
            code="hold_scope",
        )
    if hold.from_at is not None and hold.to_at is not None and hold.from_at >= hold.to_at:
        raise ValidationError("from_at must be before to_at", code="hold_scope")
    if (hold.from_at is None) != (hold.to_at is None) or (by_track and hold.from_at):
        raise ValidationError("a time range needs a camera and both ends", code="hold_scope")


def _read(row: asyncpg.Record, held: int = 0) -> HoldRead:
    return HoldRead(**dict(row), held_events=held)


async def add_hold(
    db: Database, hold: HoldCreate, *, actor: str, clock: Clock = utcnow
) -> HoldRead:
    """Place a hold; from now on the sweep skips everything it covers."""
    _check_scope(hold)
    async with db.transaction() as conn:
        row = await repository.insert(conn, uuid.uuid4(), hold, actor=actor, at=clock())
        held = await repository.held_count(conn, row["id"])
        await _audit(conn, "hold.add", row, actor=actor, held=held, clock=clock)
    return _read(row, held)


async def list_holds(db: Database, *, status: str | None = None) -> list[HoldRead]:
    """Holds, newest first, with how many stored events each covers: a listing, so from a
    replica within the lag bound (ADR 0016) in one snapshot. The sweep decides what a hold
    protects on the primary; this list only shows it."""
    async with db.snapshot() as conn:
        rows = await repository.select(conn, status=status)
        return [_read(row, await repository.held_count(conn, row["id"])) for row in rows]


async def release_hold(
    db: Database, hold_id: UUID, *, actor: str, clock: Clock = utcnow
) -> HoldRead:
    """Ask for a release (first officer) or confirm it (a second, different officer)."""
    async with db.transaction() as conn:
        row = await repository.lock(conn, hold_id)
        if row is None:
            raise NotFoundError(f"no hold {hold_id}", code="hold_not_found")
        if row["status"] == "released":
            raise ConflictError("the hold is already released", code="hold_released")
        requester = row["release_requested_by"]
        if requester is None:
            row = await repository.mark(
                conn, hold_id, step="release_requested", actor=actor, at=clock()
            )
            action = "hold.release_requested"
        elif requester == actor:
            raise ConflictError(
                "four-eyes: a second officer must confirm this release", code="hold_four_eyes"
            )
        else:
            row = await repository.mark(conn, hold_id, step="released", actor=actor, at=clock())
            action = "hold.released"
        held = await repository.held_count(conn, hold_id)
        await _audit(conn, action, row, actor=actor, held=held, clock=clock)
    return _read(row, held)


async def _audit(
    conn: asyncpg.Connection,
    action: str,
    row: asyncpg.Record,
    *,
    actor: str,
    held: int,
    clock: Clock,
) -> None:
    await append_entry(
        conn,
        AuditEntry(
            actor=actor,
            action=action,
            target=f"legal_hold:{row['id']}",
            detail={
                "held_events": held,
                "event_ids": len(row["event_ids"]),
                "camera_id": row["camera_id"],
                "track": row["track_id"] is not None,
                "incident_id": row["incident_id"],
                "created_by": row["created_by"],
            },
        ),
        clock=clock,
    )
