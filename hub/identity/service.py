"""Use cases of the edge-node registry; each opens its own transaction."""

from uuid import UUID, uuid4

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub.audit import AuditEntry, append_entry
from hub.audit.schemas import Detail
from hub.identity import repository
from hub.identity.keys import fingerprint, load_public_key, parse_public_key
from hub.identity.schemas import NodeCreate, NodeRead
from hub.kit.clock import Clock, utcnow
from hub.kit.db import Database
from hub.kit.errors import ConflictError, NotFoundError


async def add_node(
    db: Database, create: NodeCreate, *, actor: str, clock: Clock = utcnow
) -> NodeRead:
    """Register an edge node with its public key; the audit entry commits with it."""
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
