"""What ingest needs from other domains, as Protocols (implemented elsewhere)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol
from uuid import UUID

from hub.ingest.rules import PreparedEvent

Disposition = Literal["accept", "drop", "quarantine"]


@dataclass(frozen=True, slots=True)
class IngestVerdicts:
    """One disposition per event, in order, and the decision that produced them."""

    dispositions: list[Disposition]
    decision_id: str | None = None


class IngestPolicy(Protocol):
    """Decides per event whether to accept, drop or quarantine it (policy `hub/ingest`).

    Events come prepared (`PreparedEvent`): their classes and best confidence, which policy
    judges them by, are worked out once, in screening."""

    async def decide(
        self,
        *,
        node_id: UUID,
        events: Sequence[PreparedEvent],
        jurisdictions: Mapping[str, str] | None = None,
    ) -> IngestVerdicts:
        """One disposition per event, in order; `jurisdictions` maps each event's camera to
        its jurisdiction in the camera registry."""
        ...


# Rows planned per agency by one batch (agency id -> rows), to wake each agency after commit.
Planned = Mapping[UUID, int]


class RoutingSql(Protocol):
    """Routing's part of ingest's events INSERT (ADR 0030): the body of a CTE that plans the
    deliveries of the events the statement inserted, in the same statement."""

    @property
    def params(self) -> tuple[object, ...]:
        """The CTE's own parameters, numbered from `first` in `sql`."""
        ...

    def sql(self, *, first: int, inserted: str) -> str:
        """The CTE body. It reads the rows the CTE named `inserted` returns (columns `id`,
        `captured_at`, `camera_id`, `classes`, `max_confidence` and `disposition`: every
        inserted event, quarantined ones included) and returns an `agency_id` per planned
        delivery; the text must depend on `first` and `inserted` only (it is a prepared
        statement)."""
        ...


class DeliveryPlanner(Protocol):
    """Creates delivery (outbox) rows for newly stored events inside the ingest transaction,
    and queues them once that transaction has committed."""

    def routing(self) -> RoutingSql | None:
        """How this request's batch is routed inside the events INSERT; None plans nothing."""
        ...

    async def dispatch(self, planned: Planned) -> None:
        """Queue committed deliveries. Must not raise: the rows are committed, and the
        delivery reconcile job queues whatever this could not."""
        ...


class AcceptRegisteredNodes:
    """Until the policy engine lands: an authenticated, active node's events are accepted."""

    async def decide(
        self,
        *,
        node_id: UUID,
        events: Sequence[PreparedEvent],
        jurisdictions: Mapping[str, str] | None = None,
    ) -> IngestVerdicts:
        """Accept everything (authentication already proved the node is registered and active)."""
        return IngestVerdicts(dispositions=["accept"] * len(events))


class NoDeliveries:
    """Until agency routing lands: no event is offered to any agency."""

    def routing(self) -> RoutingSql | None:
        """Plan nothing."""
        return None

    async def dispatch(self, planned: Planned) -> None:
        """Nothing to queue."""


class CameraRegistry(Protocol):
    """The registry's cameras of a node, possibly kept a bounded time (hub.identity)."""

    async def jurisdictions(self, *, node_id: UUID, camera_ids: Sequence[str]) -> Mapping[str, str]:
        """Of the given cameras, those the node owns, each with its jurisdiction."""
        ...


class FeedNotifier(Protocol):
    """Tells agency feeds that events were committed (after commit, like `dispatch`)."""

    async def published(self, *, node_id: UUID, event_ids: set[UUID]) -> None:
        """Announce committed, routable events (ids only). Must not raise: the feed's
        periodic sweep picks up whatever this could not announce."""
        ...


class NoFeeds:
    """No feed listens (worker, CLI and tests that do not need one)."""

    async def published(self, *, node_id: UUID, event_ids: set[UUID]) -> None:
        """Nothing to announce."""
