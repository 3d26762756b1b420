"""HTTP routes of edge ingest: `POST /v1/edge/events` and `POST /v1/edge/media/{sha256}`."""

from datetime import timedelta
from typing import Annotated, Any, TypeVar
from uuid import UUID

import msgspec
from litestar import Request, Router, post
from litestar.params import Parameter

from hub.contracts.detection_v1 import (
    BatchResult,
    DetectionEvent,
    EventBatch,
    EventResult,
)
from hub.ingest.decider import PolicyIngestDecider
from hub.ingest.rules import unchecked_text_valid
from hub.ingest.schemas import Envelope, UncheckedBatch
from hub.ingest.service import IngestDeps, accept_batch, store_media
from hub.kit.errors import ForbiddenError, UnsupportedMediaTypeError, ValidationError
from hub.kit.images import check_pixels
from hub.media import request_scans
from hub.observability import default_metrics, span
from hub.policy.guard import current_subject
from hub.runtime import ServicesDep
from hub.settings import Settings

T = TypeVar("T")
# The largest snapshot decoded: 16.8 M pixels (twice 4K UHD), no side past 8192.
MAX_MEDIA_PIXELS = 4096 * 4096
MAX_MEDIA_SIDE = 8192
# Edge nodes may report their spool depth on uploads (not signed: telemetry only).
SPOOL_DEPTH_HEADER = "hub-spool-depth"

Sha256Param = Annotated[
    str, Parameter(pattern="^[0-9a-f]{64}$", description="SHA-256 of the body, hex")
]


class MediaResult(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a media upload: `created` is false when the hub already had it."""

    sha256: str
    size: int
    created: bool


async def post_events(request: Request[Any, Any, Any], services: ServicesDep) -> BatchResult:
    """Accept a signed batch of `hub.detection.v1` events; per-event results, same on re-send."""
    node_id = edge_node_id(request)
    # Optional: how many events wait in the node's spool (a gauge per node).
    default_metrics().note_spool_depth(str(node_id), request.headers.get(SPOOL_DEPTH_HEADER))
    _require_json(request)
    decoded = decode_batch(await request.body(), max_events=services.settings.max_batch_events)
    # Refuse before storing anything: the node keeps the batch in its spool and retries.
    await services.delivery.backpressure.check()
    batch = EventBatch(events=decoded.valid)
    deps = IngestDeps(
        db=services.db,
        future_tolerance=timedelta(seconds=services.settings.capture_future_tolerance_seconds),
        max_age=timedelta(days=services.settings.ingest_max_age_days),
        policy=PolicyIngestDecider(services.policy),
        planner=services.delivery.planner,
        notifier=services.feeds.notifier,
        pii=services.retention.keys,
        partitions=services.partitions,
        cameras=services.identity.node_cameras,
    )
    attributes: dict[str, str | int] = {
        "hub.node_id": str(node_id),
        "hub.events": len(batch.events),
    }
    with span("ingest.accept_batch", attributes=attributes):
        stored = await accept_batch(deps, node_id=node_id, batch=batch) if batch.events else None
    result = merge_results(decoded, stored)
    default_metrics().count_ingest(
        accepted=result.accepted, duplicate=result.duplicate, rejected=result.rejected
    )
    return result


async def post_media(
    request: Request[Any, Any, Any], services: ServicesDep, sha256: Sha256Param
) -> MediaResult:
    """Store a signed JPEG/PNG snapshot under its SHA-256 (idempotent)."""
    node_id = edge_node_id(request)
    body = await request.body()
    content_type = request.content_type[0].lower()
    # Refused before it is stored: decoding (scan, blur) costs per pixel, not per byte.
    check_pixels(
        body, content_type=content_type, max_pixels=MAX_MEDIA_PIXELS, max_side=MAX_MEDIA_SIDE
    )
    stored = await store_media(
        services.db,
        services.media,
        node_id=node_id,
        sha256=sha256,
        content_type=content_type,
        data=body,
        capacity=services.retention.capacity.check,
    )
    # After commit: the hub's own scan of the image runs in the worker, off this request.
    await request_scans(
        services.redis, queue_name=services.delivery.queue.queue_name, shas=[stored.sha256]
    )
    return MediaResult(sha256=stored.sha256, size=stored.size, created=stored.created)


class _EventKey(msgspec.Struct, frozen=True):
    """Just the id of an event that failed validation, to answer for it."""

    event_id: UUID


class DecodedBatch(msgspec.Struct, frozen=True, kw_only=True):
    """The valid events of a batch, and a rejection for each invalid one by position."""

    size: int
    valid: list[DetectionEvent]
    refused: dict[int, EventResult]


def decode_batch(body: bytes, *, max_events: int) -> DecodedBatch:
    """Parse a batch; an invalid event is rejected on its own (the error names its field),
    so one bad event never costs the others. 422 only when an event has no readable id."""
    try:  # one pass when every event is valid: a decode per event cost ~8 % of ingest's CPU
        whole = msgspec.json.decode(body, type=UncheckedBatch)
    except msgspec.DecodeError:  # an invalid event (or envelope): judge each on its own
        pass
    else:
        if len(whole.events) > max_events:
            raise ValidationError(f"a batch holds at most {max_events} events - at `$.events`")
        if unchecked_text_valid(body, whole.events):
            valid: list[DetectionEvent] = list(whole.events)
            return DecodedBatch(size=len(valid), valid=valid, refused={})
    envelope = _decode(body, Envelope)
    if len(envelope.events) > max_events:
        raise ValidationError(f"a batch holds at most {max_events} events - at `$.events`")
    valid = []
    refused: dict[int, EventResult] = {}
    for position, raw in enumerate(envelope.events):
        try:
            valid.append(msgspec.json.decode(raw, type=DetectionEvent))
        except msgspec.ValidationError as exc:
            key = _decode(raw, _EventKey, prefix=f"$.events[{position}]")
            where = str(exc).replace("`$", f"`$.events[{position}]", 1)
            reason = f"invalid event: {where}"[:500]
            refused[position] = EventResult(event_id=key.event_id, status="rejected", reason=reason)
    return DecodedBatch(size=len(envelope.events), valid=valid, refused=refused)


def _decode(body: bytes | msgspec.Raw, kind: type[T], *, prefix: str = "$") -> T:
    """`body` as `kind`, or 422 naming the offending field (paths start at `prefix`)."""
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        where = str(exc).replace("`$", f"`{prefix}", 1)
        raise ValidationError(where, code="validation_failed") from None
    except msgspec.DecodeError as exc:
        raise ValidationError(f"body is not valid JSON: {exc}", code="malformed_json") from None


def merge_results(decoded: DecodedBatch, stored: BatchResult | None) -> BatchResult:
    """One result per event in request order: the refused ones and what the hub did with
    the rest (`stored` answers for `decoded.valid`, in their order)."""
    if stored is not None and not decoded.refused:  # every event was valid: `stored` is it
        return stored
    answers = iter(stored.results if stored is not None else [])
    results = [decoded.refused.get(i) or next(answers) for i in range(decoded.size)]
    return BatchResult(
        results=results,
        accepted=sum(r.status == "accepted" for r in results),
        duplicate=sum(r.status == "duplicate" for r in results),
        rejected=sum(r.status == "rejected" for r in results),
    )


def edge_node_id(request: Request[Any, Any, Any]) -> UUID:
    """The edge node the guard authenticated (by its RFC 9421 signature) for this request."""
    subject = current_subject(request)
    if subject.kind != "edge_node":  # policy should never let anyone else here
        raise ForbiddenError("only edge nodes upload events and media", code="not_an_edge_node")
    return UUID(subject.id)


def _require_json(request: Request[Any, Any, Any]) -> None:
    media_type = request.content_type[0].lower()
    if media_type != "application/json":
        raise UnsupportedMediaTypeError("events must be sent as application/json")


def build_router(settings: Settings) -> Router:
    """The edge router, with body limits taken from settings."""
    return Router(
        path="/v1/edge",
        tags=["edge"],
        route_handlers=[
            post("/events", request_max_body_size=settings.max_body_bytes, status_code=200)(
                post_events
            ),
            post(
                "/media/{sha256:str}",
                request_max_body_size=settings.max_media_bytes,
                status_code=200,
            )(post_media),
        ],
    )
