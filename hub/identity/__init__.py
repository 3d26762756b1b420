"""Identities that may call the hub: the registry of edge nodes, their keys and the cameras
each owns.

It owns `edge_node` and `camera`. A revoked node never authenticates again once its
revocation is 5 s old (processes keep active keys that long, ADR 0024); its key is kept for
audit. A camera belongs to one node and lies in one jurisdiction; ingest takes that
jurisdiction from here, never from an event.
"""

from hub.identity.schemas import CameraCreate, CameraRead, NodeCreate, NodeRead
from hub.identity.service import (
    active_node_key,
    add_camera,
    add_node,
    list_cameras,
    list_nodes,
    owned_camera_jurisdictions,
    remove_camera,
    revoke_node,
)

__all__ = [
    "CameraCreate",
    "CameraRead",
    "NodeCreate",
    "NodeRead",
    "active_node_key",
    "add_camera",
    "add_node",
    "list_cameras",
    "list_nodes",
    "owned_camera_jurisdictions",
    "remove_camera",
    "revoke_node",
]
