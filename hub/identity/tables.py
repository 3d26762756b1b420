"""Piccolo table of the edge-node registry (schema in migrations/sql/0001_initial.sql)."""

from piccolo.columns import UUID, Bytea, Text, Timestamptz
from piccolo.table import Table


class EdgeNode(Table, tablename="edge_node"):
    """A camera box allowed to upload, identified by its Ed25519 key."""

    id = UUID(primary_key=True)
    name = Text(unique=True)
    public_key = Bytea()
    status = Text(default="active")
    created_at = Timestamptz()
    revoked_at = Timestamptz(null=True, default=None)
    revoked_reason = Text(null=True, default=None)
