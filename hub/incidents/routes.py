"""Incident routes under `/v1/incidents` (policy-guarded: compliance officers): cases, their
timeline, linked events and snapshots as released to the officer, evidence export and check.
Every change is audited by the use cases."""

import tempfile
from datetime import datetime, timedelta
from typing import IO, Annotated, Any, Literal
from uuid import UUID

from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody, PathParameter, QueryParameter

from hub.audit import ExportSigner, Sealer
from hub.delivery.kit import release_hash_key
from hub.identity.schemas import Subject
from hub.incidents import browse, cases, evidence
from hub.kit.clock import utcnow
from hub.kit.errors import PayloadTooLargeError, UnsupportedMediaTypeError
from hub.kit.media_response import image_response
from hub.kit.offload import Offloader
from hub.kit.params import NO_NUL
from hub.policy.guard import current_decision_id, current_subject
from hub.runtime import ServicesDep

AnyRequest = Request[Any, Any, Any]
Sha256 = Annotated[str, PathParameter(pattern=r"^[0-9a-f]{64}$")]
ZIP_TYPES = frozenset({"application/zip", "application/octet-stream"})
SPOOL_MEMORY_BYTES = 8 << 20
VERIFY_BUDGET_SECONDS = 60.0


def _who(request: AnyRequest) -> tuple[Subject, str, str | None]:
    subject = current_subject(request)
    return subject, f"{subject.kind}:{subject.id}", current_decision_id(request) or None


async def get_incidents(
    services: ServicesDep,
    status: FromQuery[Literal["open", "investigating", "closed"] | None] = None,
) -> list[cases.IncidentRead]:
    """Incidents, newest first."""
    return await cases.list_incidents(services.db, status=status)


async def post_incident(
    request: AnyRequest, services: ServicesDep, data: JSONBody[cases.IncidentCreate]
) -> Response[cases.IncidentRead]:
    """Open an incident."""
    _, actor, decision = _who(request)
    found = await cases.create_incident(services.db, data, actor=actor, decision_id=decision)
    return Response(found, status_code=201)


async def get_incident(
    request: AnyRequest, services: ServicesDep, incident_id: FromPath[UUID]
) -> cases.IncidentDetail:
    """An incident with its timeline and its events as released to the caller."""
    subject, _, _ = _who(request)
    return await cases.incident_detail(
        services.db,
        services.policy,
        incident_id,
        subject=subject,
        hash_key=release_hash_key(services.settings),
    )


async def post_assign(
    request: AnyRequest,
    services: ServicesDep,
    incident_id: FromPath[UUID],
    data: JSONBody[cases.AssignRequest],
) -> cases.IncidentRead:
    """Assign the incident."""
    _, actor, decision = _who(request)
    return await cases.assign_incident(
        services.db, incident_id, data, actor=actor, decision_id=decision
    )


async def post_status(
    request: AnyRequest,
    services: ServicesDep,
    incident_id: FromPath[UUID],
    data: JSONBody[cases.StatusChange],
) -> cases.IncidentRead:
    """Move the incident one step along open → investigating → closed."""
    _, actor, decision = _who(request)
    return await cases.change_status(
        services.db, incident_id, data, actor=actor, decision_id=decision
    )


async def post_note(
    request: AnyRequest,
    services: ServicesDep,
    incident_id: FromPath[UUID],
    data: JSONBody[cases.NoteCreate],
) -> Response[cases.NoteRead]:
    """Add a note to the timeline."""
    _, actor, decision = _who(request)
    note = await cases.add_note(services.db, incident_id, data, actor=actor, decision_id=decision)
    return Response(note, status_code=201)


async def post_event(
    request: AnyRequest,
    services: ServicesDep,
    incident_id: FromPath[UUID],
    data: JSONBody[cases.EventLink],
) -> Response[cases.NoteRead]:
    """Link a stored detection event."""
    _, actor, decision = _who(request)
    note = await cases.link_event(services.db, incident_id, data, actor=actor, decision_id=decision)
    return Response(note, status_code=201)


async def get_media(
    request: AnyRequest, services: ServicesDep, incident_id: FromPath[UUID], sha256: Sha256
) -> Response[bytes]:
    """A snapshot of a linked event, blurred as the caller's release says."""
    subject, _, _ = _who(request)
    image, content_type, decision = await cases.incident_media(
        services.db,
        services.policy,
        incident_id,
        sha256,
        subject=subject,
        hash_key=release_hash_key(services.settings),
        media_root=services.settings.media_dir,
    )
    headers = {"X-Decision-Id": decision, "Cache-Control": "no-store"}
    return image_response(image, content_type, headers=headers)  # nosniff, proven type only


async def get_candidates(
    request: AnyRequest,
    services: ServicesDep,
    since: FromQuery[datetime | None] = None,
    camera_id: Annotated[str | None, QueryParameter(max_length=128, pattern=NO_NUL)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=100)] = 24,
) -> list[browse.CandidateEvent]:
    """The newest stored events (24 h unless `since`), each released to the caller as a
    linked event would be: candidates to link to an incident."""
    subject, _, _ = _who(request)
    return await browse.browse_events(
        services.db,
        services.policy,
        subject=subject,
        hash_key=release_hash_key(services.settings),
        since=since or utcnow() - timedelta(hours=24),
        camera_id=camera_id,
        limit=limit,
    )


async def get_candidate_media(
    request: AnyRequest, services: ServicesDep, sha256: Sha256
) -> Response[bytes]:
    """A stored event's snapshot, blurred as the caller's release says."""
    subject, _, _ = _who(request)
    image, content_type, decision = await browse.candidate_media(
        services.db,
        services.policy,
        sha256,
        subject=subject,
        hash_key=release_hash_key(services.settings),
        media_root=services.settings.media_dir,
    )
    headers = {"X-Decision-Id": decision, "Cache-Control": "no-store"}
    return image_response(image, content_type, headers=headers)  # nosniff, proven type only


async def post_export(
    request: AnyRequest, services: ServicesDep, incident_id: FromPath[UUID]
) -> Response[bytes]:
    """The evidence package (ZIP with a signed SHA-256 manifest)."""
    subject, _, decision = _who(request)
    name, package = await evidence.export_evidence(
        services.db,
        services.policy,
        incident_id,
        subject=subject,
        hash_key=release_hash_key(services.settings),
        media_root=services.settings.media_dir,
        signer=ExportSigner.from_dir(services.settings.secrets_dir),
        audit=services.audit,
        decision_id=decision,
        sealer=Sealer.from_settings(services.settings, services.db),
    )
    return Response(
        package,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def post_verify(
    request: AnyRequest, services: ServicesDep, archive_checks: NamedDependency[Offloader]
) -> evidence.EvidenceCheck:
    """Check an evidence package against the hub's export key.

    The body is spooled (to disk past 8 MiB) and checked in a bounded pool: a package of
    200 MB, or one that inflates to gigabytes, costs neither the API's memory nor its loop."""
    if request.content_type[0].lower() not in ZIP_TYPES:
        raise UnsupportedMediaTypeError("send the package as application/zip")
    spool = await _spool(request, limit=request.route_handler.resolve_request_max_body_size())
    signer = ExportSigner.from_dir(services.settings.secrets_dir)
    return await archive_checks.run(_verify_spooled, spool, signer)


async def _spool(request: AnyRequest, *, limit: int | None) -> IO[bytes]:
    """The request body in a temporary file (memory up to `SPOOL_MEMORY_BYTES`)."""
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if limit is not None and size > limit:
                raise PayloadTooLargeError(
                    f"the package is larger than {limit} bytes", code="evidence_too_large"
                )
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


def _verify_spooled(spool: IO[bytes], signer: ExportSigner) -> evidence.EvidenceCheck:
    """Check the spooled package, then free it (runs in the pool)."""
    with spool:
        return evidence.verify_evidence(spool, signer=signer)


def build_router(max_package_bytes: int = evidence.MAX_PACKAGE_BYTES) -> Router:
    """The incidents router."""
    checks = Offloader("evidence-check", workers=2, queue=2, budget_seconds=VERIFY_BUDGET_SECONDS)
    return Router(
        path="/v1/incidents",
        tags=["incidents"],
        route_handlers=[
            get("/")(get_incidents),
            post("/")(post_incident),
            post(
                "/evidence/verify",
                status_code=200,
                request_max_body_size=max_package_bytes,
                dependencies={"archive_checks": Provide(lambda: checks, sync_to_thread=False)},
            )(post_verify),
            get("/candidates")(get_candidates),
            get("/candidates/media/{sha256:str}")(get_candidate_media),
            get("/{incident_id:uuid}")(get_incident),
            post("/{incident_id:uuid}/assign", status_code=200)(post_assign),
            post("/{incident_id:uuid}/status", status_code=200)(post_status),
            post("/{incident_id:uuid}/notes")(post_note),
            post("/{incident_id:uuid}/events")(post_event),
            get("/{incident_id:uuid}/media/{sha256:str}")(get_media),
            post("/{incident_id:uuid}/export", status_code=200)(post_export),
        ],
    )
