"""Use cases of the edge-node and camera registry; each opens its own transaction."""

from collections.abc import Sequence
from uuid import UUID, uuid4

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub.audit import AuditEntry, append_entry
from hub.audit.schemas import Detail
from hub.identity import repository
from hub.identity.keys import fingerprint, load_public_key, parse_public_key
from hub.identity.schemas import CameraCreate, CameraRead, NodeCreate, NodeRead
from hub.kit.clock import Clock, utcnow
from hub.kit.db import Database
from hub.kit.errors import ConflictError, NotFoundError


async def add_node(
    db: Database, create: NodeCreate, *, actor: str, clock: Clock = utcnow
) -> NodeRead:
    """Register an edge node with its public key and its cameras; the audit entries commit
    with them."""
    raw = parse_public_key(create.public_key)
    async with db.transaction() as conn:
        node = await repository.insert_node(
            conn, node_id=uuid4(), name=create.name, public_key=raw, now=clock()
        )
        if node is None:
            raise ConflictError(
                f"an edge node named {create.name!r} already exists", code="node_exists"
            )
        detail: Detail = {"name": node.name, "key_fingerprint": fingerprint(raw)}
        await append_entry(
            conn,
            AuditEntry(
                actor=actor, action="node.add", target=f"edge_node:{node.id}", detail=detail
            ),
            clock=clock,
        )
        for camera in create.cameras:
            await _register_camera(conn, node.id, camera, actor=actor, clock=clock)
    return node


async def list_nodes(db: Database) -> list[NodeRead]:
    """Every registered node (Piccolo query on the engine `db` bound at start-up)."""
    del db
    return await repository.select_nodes()


async def revoke_node(
    db: Database, ref: str, *, reason: str, actor: str, clock: Clock = utcnow
) -> NodeRead:
    """Revoke a node by id or name: its signatures are refused from the next request on."""
    async with db.transaction() as conn:
        node_id = await repository.find_node_id(ref)
        node = (
            None
            if node_id is None
            else await repository.revoke(conn, node_id=node_id, reason=reason, now=clock())
        )
        if node is None:
            raise NotFoundError(f"no edge node {ref!r}", code="node_not_found")
        await append_entry(
            conn,
            AuditEntry(
                actor=actor,
                action="node.revoke",
                target=f"edge_node:{node.id}",
                detail={"reason": reason},
            ),
            clock=clock,
        )
    return node


async def active_node_key(db: Database, node_id: UUID) -> Ed25519PublicKey | None:
    """The verification key of an active node, or None when unknown or revoked."""
    raw = await repository.active_key(db.pool, node_id)
    return None if raw is None else load_public_key(raw)


async def add_camera(
    db: Database, node_ref: str, create: CameraCreate, *, actor: str, clock: Clock = utcnow
) -> CameraRead:
    """Register a camera to a node (id or name). Registering it again exactly as it is
    changes nothing; a camera another node owns, or in another jurisdiction, is a conflict
    (remove it first: moving a camera is a decision, never a side effect)."""
    async with db.transaction() as conn:
        node_id = await _require_node(conn, node_ref)
        return await _register_camera(conn, node_id, create, actor=actor, clock=clock)


async def list_cameras(db: Database, node_ref: str | None = None) -> list[CameraRead]:
    """Registered cameras, every node's or one node's (id or name)."""
    async with db.transaction() as conn:
        node_id = None if node_ref is None else await _require_node(conn, node_ref)
        return await repository.select_cameras(conn, node_id=node_id)


async def remove_camera(
    db: Database, node_ref: str, camera_id: str, *, actor: str, clock: Clock = utcnow
) -> CameraRead:
    """Unregister a node's camera: its events are rejected once API processes stop keeping
    it (`NODE_KEY_TTL_SECONDS` at most, ADR 0024). Events already stored keep the
    jurisdiction they were stored with."""
    async with db.transaction() as conn:
        node_id = await _require_node(conn, node_ref)
        found = await repository.select_cameras(conn, node_id=node_id, camera_id=camera_id)
        if not found or not await repository.delete_camera(
            conn, node_id=node_id, camera_id=camera_id
        ):
            raise NotFoundError(
                f"edge node {node_ref!r} has no camera {camera_id!r}", code="camera_not_found"
            )
        await append_entry(
            conn,
            AuditEntry(
                actor=actor,
                action="camera.remove",
                target=f"camera:{camera_id}",
                detail={"node_id": str(node_id), "jurisdiction": found[0].jurisdiction},
            ),
            clock=clock,
        )
    return found[0]


async def owned_camera_jurisdictions(
    db: Database, *, node_id: UUID, camera_ids: Sequence[str]
) -> dict[str, str]:
    """Of the given cameras, those this node owns, each with its registered jurisdiction."""
    if not camera_ids:
        return {}
    return await repository.owned_cameras(db.pool, node_id=node_id, camera_ids=camera_ids)


async def _require_node(conn: asyncpg.Connection, node_ref: str) -> UUID:
    node_id = await repository.resolve_node(conn, node_ref)
    if node_id is None:
        raise NotFoundError(f"no edge node {node_ref!r}", code="node_not_found")
    return node_id


async def _register_camera(
    conn: asyncpg.Connection, node_id: UUID, create: CameraCreate, *, actor: str, clock: Clock
) -> CameraRead:
    created = await repository.insert_camera(
        conn, node_id=node_id, create=create, actor=actor, now=clock()
    )
    (camera,) = await repository.select_cameras(conn, camera_id=create.camera_id)
    if not created:
        if camera.node_id == node_id and camera.jurisdiction == create.jurisdiction:
            return camera
        raise ConflictError(
            f"camera {create.camera_id!r} is already registered to node {camera.node_name!r} "
            f"in jurisdiction {camera.jurisdiction!r}; remove it first",
            code="camera_exists",
        )
    await append_entry(
        conn,
        AuditEntry(
            actor=actor,
            action="camera.add",
            target=f"camera:{camera.camera_id}",
            detail={"node_id": str(node_id), "jurisdiction": camera.jurisdiction},
        ),
        clock=clock,
    )
    return camera
