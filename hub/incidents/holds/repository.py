"""SQL of legal holds; composed from module constants only."""

from datetime import datetime
from uuid import UUID

import asyncpg

from hub.incidents.holds.schemas import HoldCreate
from hub.retention.repository import HELD

COLUMNS = """id, reason, incident_id, event_ids, camera_id, from_at, to_at, track_id, status,
    created_by, created_at, release_requested_by, release_requested_at, released_by,
    released_at"""
_HELD_BY_ONE = HELD.replace("h.status", "h.id = $1 AND h.status")


async def held_count(conn: asyncpg.Connection, hold_id: UUID) -> int:
    """Events the given hold covers (the sweep's HELD predicate restricted to one hold)."""
    sql = f"SELECT count(*) FROM detection_event e WHERE {_HELD_BY_ONE}"
    return int(await conn.fetchval(sql, hold_id))


async def insert(
    conn: asyncpg.Connection, hold_id: UUID, hold: HoldCreate, *, actor: str, at: datetime
) -> asyncpg.Record:
    """Insert a hold; returns its row."""
    row: asyncpg.Record = await conn.fetchrow(
        f"""INSERT INTO legal_hold (id, reason, incident_id, event_ids, camera_id, from_at,
                to_at, track_id, created_by, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}""",
        hold_id,
        hold.reason,
        hold.incident_id,
        hold.event_ids,
        hold.camera_id,
        hold.from_at,
        hold.to_at,
        hold.track_id,
        actor,
        at,
    )
    return row


async def select(conn: asyncpg.Connection, *, status: str | None) -> list[asyncpg.Record]:
    """Holds, newest first."""
    return list(
        await conn.fetch(
            f"""SELECT {COLUMNS} FROM legal_hold WHERE $1::text IS NULL OR status = $1
                ORDER BY created_at DESC""",
            status,
        )
    )


async def lock(conn: asyncpg.Connection, hold_id: UUID) -> asyncpg.Record | None:
    """One hold, locked for update."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM legal_hold WHERE id = $1 FOR UPDATE", hold_id
    )
    return row


async def mark(
    conn: asyncpg.Connection, hold_id: UUID, *, step: str, actor: str, at: datetime
) -> asyncpg.Record:
    """Record a release request or the confirmed release."""
    if step == "release_requested":
        sql = "release_requested_by = $2, release_requested_at = $3"
    else:
        sql = "status = 'released', released_by = $2, released_at = $3"
    row: asyncpg.Record = await conn.fetchrow(
        f"UPDATE legal_hold SET {sql} WHERE id = $1 RETURNING {COLUMNS}", hold_id, actor, at
    )
    return row
