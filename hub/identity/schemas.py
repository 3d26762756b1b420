"""Edge-node registry structs."""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

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
