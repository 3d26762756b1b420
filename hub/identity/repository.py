"""SQL for the edge-node registry; the only module that queries `edge_node` and `camera`."""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from hub.identity.keys import fingerprint
from hub.identity.schemas import CameraCreate, CameraRead, NodeRead
from hub.identity.tables import EdgeNode

_COLUMNS = "id, name, status, public_key, created_at, revoked_at, revoked_reason"


async def insert_node(
    conn: asyncpg.Connection, *, node_id: UUID, name: str, public_key: bytes, now: datetime
) -> NodeRead | None:
    """Insert a node; None when the name is taken."""
    row = await conn.fetchrow(
        f"""INSERT INTO edge_node (id, name, public_key, created_at) VALUES ($1, $2, $3, $4)
            ON CONFLICT (name) DO NOTHING RETURNING {_COLUMNS}""",
        node_id,
        name,
        public_key,
        now,
    )
    return None if row is None else _read(row)


async def select_nodes() -> list[NodeRead]:
    """Every node, oldest first."""
    rows = await EdgeNode.select().order_by(EdgeNode.created_at, EdgeNode.name)
    return [_read(row) for row in rows]


async def revoke(
    conn: asyncpg.Connection, *, node_id: UUID, reason: str, now: datetime
) -> NodeRead | None:
    """Mark a node revoked (idempotent: an already revoked node keeps its first revocation)."""
    row = await conn.fetchrow(
        f"""UPDATE edge_node
            SET status = 'revoked', revoked_at = coalesce(revoked_at, $2),
                revoked_reason = coalesce(revoked_reason, $3)
            WHERE id = $1 RETURNING {_COLUMNS}""",
        node_id,
        now,
        reason,
    )
    return None if row is None else _read(row)


async def find_node_id(ref: str) -> UUID | None:
    """Resolve a node by id or by name (runs in the caller's transaction, if any)."""
    try:
        return UUID(ref)
    except ValueError:
        row = await EdgeNode.select(EdgeNode.id).where(EdgeNode.name == ref).first()
        return None if row is None else UUID(str(row["id"]))


async def resolve_node(conn: asyncpg.Connection, ref: str) -> UUID | None:
    """The id of the node named `ref`, or whose id it is (active or revoked); None if none.

    Plain SQL on the caller's connection: the use case's transaction, whatever engine the
    Piccolo tables were bound to."""
    value = await conn.fetchval(
        "SELECT id FROM edge_node WHERE name = $1 OR id::text = lower($1) LIMIT 1", ref
    )
    return None if value is None else UUID(str(value))


async def active_key(conn: asyncpg.Connection | asyncpg.Pool, node_id: UUID) -> bytes | None:
    """The raw public key of an active node, or None (unknown or revoked)."""
    value = await conn.fetchval(
        "SELECT public_key FROM edge_node WHERE id = $1 AND status = 'active'", node_id
    )
    return None if value is None else bytes(value)


def _read(row: Mapping[str, Any]) -> NodeRead:
    return NodeRead(
        id=row["id"],
        name=row["name"],
        status=row["status"],
        key_fingerprint=fingerprint(bytes(row["public_key"])),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        revoked_reason=row["revoked_reason"],
    )


_CAMERA_COLUMNS = """c.camera_id, c.node_id, n.name AS node_name, c.jurisdiction, c.description,
    c.created_at, c.created_by"""


async def insert_camera(
    conn: asyncpg.Connection, *, node_id: UUID, create: CameraCreate, actor: str, now: datetime
) -> bool:
    """Register a camera to a node; False when the camera id is already registered."""
    status: str = await conn.execute(
        """INSERT INTO camera (camera_id, node_id, jurisdiction, description, created_at,
                               created_by)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (camera_id) DO NOTHING""",
        create.camera_id,
        node_id,
        create.jurisdiction,
        create.description,
        now,
        actor,
    )
    return status.endswith(" 1")


async def select_cameras(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    node_id: UUID | None = None,
    camera_id: str | None = None,
) -> list[CameraRead]:
    """Registered cameras, by node then id; only one node's or one camera when given."""
    rows = await conn.fetch(
        f"""SELECT {_CAMERA_COLUMNS} FROM camera c JOIN edge_node n ON n.id = c.node_id
            WHERE ($1::uuid IS NULL OR c.node_id = $1) AND ($2::text IS NULL OR c.camera_id = $2)
            ORDER BY n.name, c.camera_id""",
        node_id,
        camera_id,
    )
    return [CameraRead(**dict(row)) for row in rows]


async def delete_camera(conn: asyncpg.Connection, *, node_id: UUID, camera_id: str) -> bool:
    """Unregister a node's camera; False when the node does not own it."""
    status: str = await conn.execute(
        "DELETE FROM camera WHERE camera_id = $1 AND node_id = $2", camera_id, node_id
    )
    return status.endswith(" 1")


async def owned_cameras(
    conn: asyncpg.Connection | asyncpg.Pool, *, node_id: UUID, camera_ids: Sequence[str]
) -> dict[str, str]:
    """Of the given cameras, those the node owns, each with its jurisdiction."""
    rows = await conn.fetch(
        "SELECT camera_id, jurisdiction FROM camera WHERE node_id = $1 AND camera_id = ANY($2)",
        node_id,
        list(camera_ids),
    )
    return {row["camera_id"]: row["jurisdiction"] for row in rows}
