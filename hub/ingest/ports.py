"""What ingest needs from other domains, as Protocols (implemented elsewhere)."""

from dataclasses import dataclass
from typing import Literal, Protocol
from uuid import UUID

import asyncpg

from hub.contracts.detection_v1 import DetectionEvent

Disposition = Literal["accept", "drop", "quarantine"]


@dataclass(frozen=True, slots=True)
class IngestVerdicts:
    """One disposition per event, in order, and the decision that produced them."""

    dispositions: list[Disposition]
    decision_id: str | None = None


class IngestPolicy(Protocol):
    """Decides per event whether to accept, drop or quarantine it (policy `hub/ingest`)."""

    async def decide(self, *, node_id: UUID, events: list[DetectionEvent]) -> IngestVerdicts:
        """One disposition per event, in order."""
        ...


class DeliveryPlanner(Protocol):
    """Creates delivery (outbox) rows for newly stored events inside the ingest transaction."""

    async def plan(
        self, conn: asyncpg.Connection, *, node_id: UUID, event_ids: set[UUID]
    ) -> list[UUID]:
        """Insert deliveries; return their ids, to enqueue after commit."""
        ...


class AcceptRegisteredNodes:
    """Until the policy engine lands: an authenticated, active node's events are accepted."""

    async def decide(self, *, node_id: UUID, events: list[DetectionEvent]) -> IngestVerdicts:
        """Accept everything (authentication already proved the node is registered and active)."""
        return IngestVerdicts(dispositions=["accept"] * len(events))


class NoDeliveries:
    """Until agency routing lands: no event is offered to any agency."""

    async def plan(
        self, conn: asyncpg.Connection, *, node_id: UUID, event_ids: set[UUID]
    ) -> list[UUID]:
        """Plan nothing."""
        return []
