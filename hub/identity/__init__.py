"""Identities that may call the hub; for now the registry of edge nodes and their keys.

It owns `edge_node`. A revoked node never authenticates again; its key is kept for audit.
"""

from hub.identity.schemas import NodeCreate, NodeRead
from hub.identity.service import active_node_key, add_node, list_nodes, revoke_node

__all__ = ["NodeCreate", "NodeRead", "active_node_key", "add_node", "list_nodes", "revoke_node"]
