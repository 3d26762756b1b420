"""SQL for the edge-node registry; the only module that queries `edge_node`."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from hub.identity.keys import fingerprint
from hub.identity.schemas import NodeRead
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
