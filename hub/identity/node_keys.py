"""Active edge nodes' verification keys, kept in the process for a few seconds.

Every signed request needs its node's key, and looking it up was a pooled round trip per
request (about 1-3 ms of waiting under ingest load) for a value that changes only when the
node is revoked: a node's key never changes under its id (a new key is a new node). A key
is therefore kept at most `ttl_seconds` after the look-up that found it active started, so a
revocation committed at time R refuses the node's requests from R + `ttl_seconds` on at the
latest (ADR 0024). Unknown and revoked nodes are never kept: a node added is usable at once,
and a refused keyid is looked up again on every request, as before.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub.identity.service import active_node_key
from hub.kit.db import Database

# Revocation bound: how long a revoked node's key may still verify in a running process.
NODE_KEY_TTL_SECONDS = 5.0
# More active nodes than this in one process empties the cache rather than growing it.
_MAX_NODES = 10_000


@dataclass(slots=True)
class NodeKeys:
    """The keys of active nodes by id, each trusted for at most `ttl_seconds`."""

    db: Database
    ttl_seconds: float = NODE_KEY_TTL_SECONDS
    clock: Callable[[], float] = time.monotonic
    _kept: dict[UUID, tuple[float, Ed25519PublicKey]] = field(default_factory=dict)

    async def active_key(self, node_id: UUID) -> Ed25519PublicKey | None:
        """The node's key while it is active; None when unknown or revoked."""
        started = self.clock()
        kept = self._kept.get(node_id)
        if kept is not None and started < kept[0]:
            return kept[1]
        # The expiry counts from before the look-up: its snapshot may predate a revocation
        # that commits while it runs, and the bound must hold from that commit.
        key = await active_node_key(self.db, node_id)
        if key is None:
            self._kept.pop(node_id, None)
            return None
        if len(self._kept) >= _MAX_NODES:
            self._kept.clear()
        self._kept[node_id] = (started + self.ttl_seconds, key)
        return key
