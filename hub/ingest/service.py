"""Use cases of ingest: store a batch of detection events exactly once, store media."""

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

import asyncpg

from hub.audit import AuditEntry, append_entry, audit_append
from hub.contracts.detection_v1 import BatchResult, DetectionEvent, EventBatch, EventResult
from hub.identity import owned_camera_jurisdictions
from hub.ingest import repository
from hub.ingest.partitions import PartitionStatistics
from hub.ingest.ports import (
    AcceptRegisteredNodes,
    CameraRegistry,
    DeliveryPlanner,
    FeedNotifier,
    IngestPolicy,
    NoDeliveries,
    NoFeeds,
    Planned,
    RoutingSql,
)
from hub.ingest.rules import PreparedEvent, Screen, screen, verdict_for_existing
from hub.kit.clock import Clock, utcnow
from hub.kit.db import Database
from hub.kit.errors import UnsupportedMediaTypeError, ValidationError
from hub.kit.storage import BlobStore
from hub.media import event_regions
from hub.retention import KeyRing, seal_events


@dataclass(frozen=True, slots=True)
class IngestDeps:
    """Collaborators of ingest; the policy and delivery seams default to the pre-policy ones."""

    db: Database
    future_tolerance: timedelta
    # Capture times older than this are rejected (HUB_INGEST_MAX_AGE_DAYS).
    max_age: timedelta = timedelta(days=30)
    policy: IngestPolicy = field(default_factory=AcceptRegisteredNodes)
    planner: DeliveryPlanner = field(default_factory=NoDeliveries)
    notifier: FeedNotifier = field(default_factory=NoFeeds)
    clock: Clock = utcnow
    # PII at rest: with a key ring, detection attributes are also sealed in the PII vault.
    pii: KeyRing | None = None
    # The process's watch on partition statistics (None: leave them to autovacuum).
    partitions: PartitionStatistics | None = None
    # The nodes' cameras as the process keeps them (None: the registry, asked every batch).
    cameras: CameraRegistry | None = None


async def accept_batch(deps: IngestDeps, *, node_id: UUID, batch: EventBatch) -> BatchResult:
    """Store each new event once; answer per event, the same way every time it is re-sent."""
    rules = await _screen_rules(deps, node_id, batch)
    keep, decided = screen(batch.events, rules=rules)
    policy = await _apply_policy(
        deps, node_id=node_id, keep=keep, decided=decided, batch=batch, cameras=rules.cameras
    )
    try:
        outcome, result = await _write(deps, node_id, batch, decided, policy, race_tolerant=False)
    except repository.LostRaceError:
        # A concurrent request stored one of these events between this one's existence check
        # and its insert, and the transaction rolled back: once more, skipping such events
        # (they are answered as re-sends). Rare, so the common batch keeps the cheaper plain
        # INSERT.
        outcome, result = await _write(deps, node_id, batch, decided, policy, race_tolerant=True)
    # Quarantined events are stored for review but never offered to any agency.
    routable = outcome.inserted - policy.quarantined
    # After commit: a job must never run before its row is visible.
    await deps.planner.dispatch(outcome.planned)
    await deps.notifier.published(node_id=node_id, event_ids=routable)
    if deps.partitions is not None and outcome.rows:
        await deps.partitions.written(captured for _, captured in outcome.rows.values())
    return result


async def _write(
    deps: IngestDeps,
    node_id: UUID,
    batch: EventBatch,
    decided: dict[int, EventResult],
    policy: "_PolicyOutcome",
    *,
    race_tolerant: bool,
) -> tuple["_StoreOutcome", BatchResult]:
    """The batch's one transaction: its new events, their PII sealed, its audit entry."""
    async with deps.db.transaction() as conn:
        outcome = await _store(
            conn,
            node_id=node_id,
            keep=policy.keep,
            quarantined=policy.quarantined,
            routing=deps.planner.routing(),
            strip_pii=deps.pii is not None,
            race_tolerant=race_tolerant,
        )
        result = _assemble(batch.events, decided, outcome.results)
        entry = _audit(node_id, result, outcome.inserted, decision_id=policy.decision_id)
        if deps.pii is not None and outcome.fresh:
            # The attributes live only here; the stored payloads name them (`pii_ref`). The
            # vault's statement writes the audit entry too (ADR 0030): a round trip fewer.
            stored = [p.event for p in outcome.fresh]
            also = audit_append(entry, clock=deps.clock)
            await seal_events(conn, deps.pii, events=stored, rows=outcome.rows, also=also)
        else:
            await append_entry(conn, entry, clock=deps.clock)
    return outcome, result


async def _screen_rules(deps: IngestDeps, node_id: UUID, batch: EventBatch) -> Screen:
    """The node's cameras of this batch, from the registry, and the capture-time window."""
    camera_ids = sorted({e.camera_id for e in batch.events})
    cameras = (
        await deps.cameras.jurisdictions(node_id=node_id, camera_ids=camera_ids)
        if deps.cameras is not None
        else await owned_camera_jurisdictions(deps.db, node_id=node_id, camera_ids=camera_ids)
    )
    return Screen.at(
        deps.clock(),
        cameras=cameras,
        future_tolerance=deps.future_tolerance,
        max_age=deps.max_age,
    )


@dataclass(frozen=True, slots=True)
class _PolicyOutcome:
    keep: list[PreparedEvent]
    quarantined: set[UUID]
    decision_id: str | None


@dataclass(slots=True)
class _StoreOutcome:
    results: dict[UUID, EventResult]
    inserted: set[UUID]
    rows: dict[UUID, repository.StoredRow]  # where each inserted event's row is
    fresh: list[PreparedEvent]  # the events inserted, in id order
    planned: Planned  # deliveries the insert planned, per agency (routed: accepted ones)


async def _apply_policy(
    deps: IngestDeps,
    *,
    node_id: UUID,
    keep: list[PreparedEvent],
    decided: dict[int, EventResult],
    batch: EventBatch,
    cameras: Mapping[str, str],
) -> _PolicyOutcome:
    """Ask the ingest policy; dropped events become `rejected`, quarantined ones are flagged.

    `cameras` are the registry's jurisdictions of the node's cameras in this batch: every kept
    event's camera is among them (screening refused the others)."""
    verdicts = await deps.policy.decide(node_id=node_id, events=keep, jurisdictions=cameras)
    dispositions = verdicts.dispositions
    dropped = {p.event.event_id for p, d in zip(keep, dispositions, strict=True) if d == "drop"}
    quarantined = {
        p.event.event_id for p, d in zip(keep, dispositions, strict=True) if d == "quarantine"
    }
    if not dropped:  # the common case: nothing to take out
        return _PolicyOutcome(keep=keep, quarantined=quarantined, decision_id=verdicts.decision_id)
    for position, event in enumerate(batch.events):
        if event.event_id in dropped and position not in decided:
            decided[position] = EventResult(
                event_id=event.event_id, status="rejected", reason="dropped by policy"
            )
    kept = [p for p in keep if p.event.event_id not in dropped]
    return _PolicyOutcome(keep=kept, quarantined=quarantined, decision_id=verdicts.decision_id)


async def _store(
    conn: asyncpg.Connection,
    *,
    node_id: UUID,
    keep: list[PreparedEvent],
    quarantined: set[UUID],
    routing: RoutingSql | None,
    strip_pii: bool,
    race_tolerant: bool,
) -> _StoreOutcome:
    """Insert what is new; compare what already exists (stored before, or by a concurrent
    request that won the race) with what was sent."""
    # Sorted, so two requests inserting overlapping batches take row locks in one order (by
    # the id's integer: the order UUIDs compare in, without a Python comparison per pair).
    ordered = sorted(keep, key=lambda p: p.event.event_id.int)
    # Redaction belongs to the image: every new event's boxes become regions of the images
    # it references, recorded by the INSERT for the events it inserts (hub.media).
    regions = event_regions([p.event for p in ordered], node_id=node_id)
    stored = await repository.insert_events(
        conn,
        node_id=node_id,
        events=ordered,
        quarantined=quarantined,
        regions=regions,
        routing=routing,
        strip_pii=strip_pii,
        race_tolerant=race_tolerant,
    )
    rows = stored.rows
    inserted = set(rows)
    # The common case is a batch of new events: all of them stored, nothing to sort out.
    fresh = (
        ordered
        if len(rows) == len(ordered)
        else [p for p in ordered if p.event.event_id in inserted]
    )
    # Only re-sends (and lost races) need the stored hashes: a batch of new events skips this.
    others = (
        []
        if fresh is ordered
        else [p.event.event_id for p in ordered if p.event.event_id not in inserted]
    )
    existing = (
        await repository.stored_hashes(conn, node_id=node_id, event_ids=others) if others else {}
    )
    results: dict[UUID, EventResult] = {}
    for p in keep:
        event_id = p.event.event_id
        if event_id in inserted:
            results[event_id] = EventResult(event_id=event_id, status="accepted")
        else:
            results[event_id] = verdict_for_existing(
                event_id, stored_sha256=existing[event_id], sent_sha256=p.content_sha256
            )
    return _StoreOutcome(
        results=results, inserted=inserted, rows=rows, fresh=fresh, planned=stored.planned
    )


def _assemble(
    events: list[DetectionEvent], decided: dict[int, EventResult], stored: dict[UUID, EventResult]
) -> BatchResult:
    # Nothing decided before storage: `stored` answers every event, in batch order already.
    results = (
        list(stored.values())
        if not decided
        else [decided.get(i) or stored[e.event_id] for i, e in enumerate(events)]
    )
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for r in results:
        counts[r.status] += 1
    return BatchResult(results=results, **counts)


def _audit(
    node_id: UUID, result: BatchResult, inserted: set[UUID], *, decision_id: str | None
) -> AuditEntry:
    return AuditEntry(
        actor=f"edge_node:{node_id}",
        action="ingest.batch",
        target=f"edge_node:{node_id}",
        decision_id=decision_id,
        detail={
            "accepted": result.accepted,
            "duplicate": result.duplicate,
            "rejected": result.rejected,
            "stored": len(inserted),
        },
    )


MEDIA_MAGIC = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n"}


@dataclass(frozen=True, slots=True)
class MediaStored:
    """The answer to a media upload."""

    sha256: str
    size: int
    created: bool


async def store_media(
    db: Database,
    media: BlobStore,
    *,
    node_id: UUID,
    sha256: str,
    content_type: str,
    data: bytes,
    capacity: Callable[[], None] | None = None,
) -> MediaStored:
    """Store a snapshot content-addressed; uploading the same bytes again changes nothing.

    `capacity` raises when the media volume is too full (disk pressure refuses new media
    rather than deleting anything).
    """
    magic = MEDIA_MAGIC.get(content_type)
    if magic is None:
        raise UnsupportedMediaTypeError("media must be image/jpeg or image/png", code="media_type")
    if not data.startswith(magic):
        raise ValidationError(f"body is not a {content_type} image", code="media_content")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ValidationError("body does not hash to the given sha256", code="media_hash_mismatch")
    if capacity is not None:
        capacity()
    # File first, row second: a row never points at a missing file; an orphan file left by a
    # crash is harmless (the next upload of the same bytes reuses it).
    path = await media.put(sha256, data)
    async with db.transaction() as conn:
        created = await repository.insert_media(
            conn,
            sha256=sha256,
            size=len(data),
            content_type=content_type,
            storage_path=path,
            node_id=node_id,
        )
        if created:
            await append_entry(
                conn,
                AuditEntry(
                    actor=f"edge_node:{node_id}",
                    action="ingest.media",
                    target=f"media:{sha256}",
                    detail={"size": len(data), "content_type": content_type},
                ),
            )
    return MediaStored(sha256=sha256, size=len(data), created=created)
