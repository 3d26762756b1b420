"""Edge-node registry structs."""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

Role = Literal["edge_node", "agency", "admin", "compliance_officer", "operator"]

NodeName = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")]
# The same pattern as `camera_id` in `hub.detection.v1`, so every event camera can be registered.
CameraId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:\-]{1,128}$")]
Jurisdiction = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9_.\-]+$")]


class CameraCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Register a camera to a node: events for it are accepted only from that node, and its
    records lie in `jurisdiction` whatever an event says."""

    camera_id: CameraId
    jurisdiction: Jurisdiction
    description: Annotated[str, msgspec.Meta(max_length=500)] = ""


class NodeCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Register a node: its name, its Ed25519 public key (PEM or raw base64) and, optionally,
    the cameras it owns."""

    name: NodeName
    public_key: str
    cameras: list[CameraCreate] = []


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


class CameraRead(msgspec.Struct, frozen=True, kw_only=True):
    """A registered camera and the node that owns it."""

    camera_id: str
    node_id: UUID
    node_name: str
    jurisdiction: str
    description: str
    created_at: datetime
    created_by: str


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
