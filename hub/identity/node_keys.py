"""Active edge nodes' verification keys and their cameras, kept in the process a few seconds.

Every signed request needs its node's key, and looking it up was a pooled round trip per
request (about 1-3 ms of waiting under ingest load) for a value that changes only when the
node is revoked: a node's key never changes under its id (a new key is a new node). A key
is therefore kept at most `ttl_seconds` after the look-up that found it active started, so a
revocation committed at time R refuses the node's requests from R + `ttl_seconds` on at the
latest (ADR 0024). Unknown and revoked nodes are never kept: a node added is usable at once,
and a refused keyid is looked up again on every request, as before.

The cameras a node owns, with their jurisdictions, are kept the same way (`NodeCameras`):
every batch needs them, and they change only when an admin adds or removes a camera. A
camera removed at R is refused from R + `ttl_seconds` on; a camera added is looked up at once
(only cameras found are kept); a camera's jurisdiction cannot change under it (a move is a
removal and an addition, so an event stored inside the bound carries the jurisdiction the
registry gave it when it was sent).
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub.identity.service import active_node_key, owned_camera_jurisdictions
from hub.kit.db import Database
from hub.kit.kept import Kept

# Revocation bound: how long a revoked node's key (or a removed camera) may still be accepted
# by a running process.
NODE_KEY_TTL_SECONDS = 5.0


@dataclass(slots=True)
class NodeKeys:
    """The keys of active nodes by id, each trusted for at most `ttl_seconds`."""

    db: Database
    ttl_seconds: float = NODE_KEY_TTL_SECONDS
    clock: Callable[[], float] = time.monotonic
    _kept: Kept[UUID, Ed25519PublicKey] = field(init=False)

    def __post_init__(self) -> None:
        self._kept = Kept(ttl_seconds=self.ttl_seconds)

    async def active_key(self, node_id: UUID) -> Ed25519PublicKey | None:
        """The node's key while it is active; None when unknown or revoked."""
        started = self.clock()
        kept = self._kept.get(node_id, now=started)
        if kept is not None:
            return kept
        key = await active_node_key(self.db, node_id)
        if key is None:
            self._kept.forget(node_id)
            return None
        self._kept.keep(node_id, key, looked_up_at=started)
        return key


@dataclass(slots=True)
class NodeCameras:
    """Implements ingest's `CameraRegistry`: the jurisdictions of the cameras a node owns,
    each trusted for at most `ttl_seconds` (one registry round trip per batch saved)."""

    db: Database
    ttl_seconds: float = NODE_KEY_TTL_SECONDS
    clock: Callable[[], float] = time.monotonic
    _kept: Kept[tuple[UUID, str], str] = field(init=False)

    def __post_init__(self) -> None:
        self._kept = Kept(ttl_seconds=self.ttl_seconds)

    async def jurisdictions(self, *, node_id: UUID, camera_ids: Sequence[str]) -> dict[str, str]:
        """Of the given cameras, those the node owns, each with its jurisdiction."""
        started = self.clock()
        found: dict[str, str] = {}
        missing: list[str] = []
        for camera in camera_ids:
            jurisdiction = self._kept.get((node_id, camera), now=started)
            if jurisdiction is None:
                missing.append(camera)
            else:
                found[camera] = jurisdiction
        if missing:
            owned = await owned_camera_jurisdictions(self.db, node_id=node_id, camera_ids=missing)
            for camera in missing:
                if camera in owned:
                    self._kept.keep((node_id, camera), owned[camera], looked_up_at=started)
                else:
                    self._kept.forget((node_id, camera))
            found.update(owned)
        return found
