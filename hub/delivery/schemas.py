"""Structs of the delivery domain: agencies as registered, deliveries and attempts as read."""

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

AgencyName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[a-z0-9][a-z0-9_.\-]*$")
]
AgencyStatus = Literal["active", "paused", "disabled"]
DeliveryStatus = Literal[
    "pending", "in_flight", "retrying", "delivered", "dead", "withheld", "cancelled"
]
Outcome = Literal["delivered", "retry", "dead", "withheld"]
# FIFO for receivers that need order (ADR 0019): none (batched, concurrent), one queue per
# agency, or one queue per camera.
Ordering = Literal["none", "agency", "camera"]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class Subscription(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which events an agency is offered: empty lists mean every class / every camera."""

    classes: list[Label] = []
    cameras: list[Label] = []
    min_confidence: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    purpose: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "investigation"


# An agency's own retry schedule: seconds to wait after attempt 1, 2, ...; the last repeats.
RetrySchedule = Annotated[
    list[Annotated[float, msgspec.Meta(gt=0, le=86_400)]],
    msgspec.Meta(min_length=1, max_length=20),
]


class AgencyCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Register an agency. `name` is its recipient id in release policy; `config` is the
    adapter's own configuration, validated by that adapter."""

    name: AgencyName
    kind: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    config: dict[str, Any]
    subscription: Subscription = msgspec.field(default_factory=Subscription)
    jurisdictions: list[Label] = []
    clearance: Annotated[int, msgspec.Meta(ge=0, le=10)] = 0
    max_concurrency: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 8
    rate_per_second: Annotated[float, msgspec.Meta(gt=0, le=100_000)] = 200.0
    # None: the hub's doubling backoff (HUB_DELIVERY_BACKOFF_*).
    retry_schedule: RetrySchedule | None = None
    ordering: Ordering = "none"


class AgencyUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Change an agency's settings; a field left out keeps its value."""

    ordering: Ordering | None = None


class AgencyRead(msgspec.Struct, frozen=True, kw_only=True):
    """A registered agency as listed: the endpoint, never the adapter's secrets."""

    id: UUID
    name: str
    kind: str
    endpoint: str
    status: AgencyStatus
    subscription: Subscription
    jurisdictions: list[str]
    clearance: int
    max_concurrency: int
    rate_per_second: float
    retry_schedule: list[float] | None = None
    ordering: Ordering = "none"
    paused_reason: str | None = None
    paused_at: datetime | None = None
    created_at: datetime | None = None


class Agency(msgspec.Struct, frozen=True, kw_only=True):
    """What the worker needs of an agency, config included (never serialised to clients)."""

    id: UUID
    name: str
    kind: str
    config: dict[str, Any]
    status: AgencyStatus
    purpose: str
    jurisdictions: list[str]
    clearance: int
    max_concurrency: int
    rate_per_second: float
    retry_schedule: list[float] | None = None
    ordering: Ordering = "none"


class ResealResult(msgspec.Struct, frozen=True, kw_only=True):
    """What `agencies reseal` did: the master key now sealing, and the agencies rewritten."""

    key: str
    resealed: list[str]


class DeliveryRead(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the ledger."""

    id: UUID
    agency: str
    event_pk: int
    event_captured_at: datetime
    status: DeliveryStatus
    attempts: int
    attempt_limit: int
    next_attempt_at: datetime
    last_error: str | None
    last_status_code: int | None
    decision_id: str | None
    receipt: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None


class AttemptRead(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt of a delivery."""

    attempt: int
    started_at: datetime
    duration_ms: int
    outcome: Outcome
    status_code: int | None
    error: str | None
    decision_id: str | None


class DeliveryDetail(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery with its attempts (dead-letter inspection)."""

    delivery: DeliveryRead
    attempts: list[AttemptRead]


class ReplayRange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Replay the dead letters that died in [since, until), optionally of one agency."""

    since: datetime
    until: datetime
    agency: AgencyName | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 10_000


class ReplayResult(msgspec.Struct, frozen=True, kw_only=True):
    """How many dead letters went back to the queue."""

    replayed: int
    ids: list[UUID]


class BreakerState(msgspec.Struct, frozen=True, kw_only=True):
    """A circuit breaker as operators see it."""

    agency: str
    state: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    opened_at: float | None = None
    failing_since: float | None = None


class OrderBlock(msgspec.Struct, frozen=True, kw_only=True):
    """A FIFO queue stopped behind a failed head: the delivery every later one waits for."""

    agency: str
    camera: str | None  # None: the agency's one queue (ordering `agency`)
    delivery_id: UUID
    since: datetime | None  # the head's first failed attempt
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    waiting: int  # open deliveries behind the head


class AgencyHealth(msgspec.Struct, frozen=True, kw_only=True):
    """Per-agency counts for the console and `hub agencies list`; `blocked` lists the FIFO
    queues (ADR 0019) waiting for a failed head."""

    agency: AgencyRead
    breaker: BreakerState
    counts: dict[str, int]
    blocked: list[OrderBlock] = []
