"""Edge-node registry structs."""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

Role = Literal["edge_node", "agency", "admin", "compliance_officer", "operator"]

NodeName = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]


class NodeCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Register a node: its name and its Ed25519 public key (PEM or raw base64)."""

    name: NodeName
    public_key: str


class NodeRead(msgspec.Struct, frozen=True, kw_only=True):
    """A registered node; `key_id` is what the node puts in its signatures."""

    id: UUID
    name: str
    status: Literal["active", "revoked"]
    key_fingerprint: str
    created_at: datetime
    revoked_at: datetime | None = None
    revoked_reason: str | None = None

    @property
    def key_id(self) -> str:
        """The `keyid` the node signs with."""
        return str(self.id)


class Subject(msgspec.Struct, frozen=True, kw_only=True):
    """Who is asking; built from a verified signature, token or certificate, never the body."""

    id: str
    kind: Literal["edge_node", "user", "client"]
    roles: list[Role]
    agency: str | None = None
    jurisdictions: list[str] = []
    clearance: int = 0
    purpose: str | None = None
    status: Literal["active", "revoked"] = "active"
