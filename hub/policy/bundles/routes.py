"""Admin routes of policy bundles under `/v1/admin/policy`.

The app-wide policy guard authenticates and authorises every request first (`hub/authz`
decides who is an admin); handlers only read the subject it left and call the service.
"""

from typing import Annotated, Any

from litestar import Request, Response, Router, get, post
from litestar.params import JSONBody, Parameter

from hub.identity.schemas import Subject
from hub.kit.clock import utcnow
from hub.kit.errors import UnsupportedMediaTypeError
from hub.policy.bundles.archive import REVISION_PATTERN
from hub.policy.bundles.config import upload_rules
from hub.policy.bundles.impact import ImpactReport, bundle_impact
from hub.policy.bundles.schemas import BundleRead, PolicyStatus, RollbackRequest, UploadResult
from hub.policy.bundles.service import (
    Actor,
    activate_bundle,
    bundle_status,
    list_bundles,
    rollback,
    upload_bundle,
)
from hub.policy.guard import current_decision_id, current_subject
from hub.runtime import ServicesDep
from hub.settings import Settings

ARCHIVE_TYPES = frozenset({"application/gzip", "application/x-gzip", "application/octet-stream"})
RevisionParam = Annotated[
    str, Parameter(pattern=REVISION_PATTERN, description="Bundle revision from its .manifest")
]
AnyRequest = Request[Any, Any, Any]


async def post_bundle(request: AnyRequest, services: ServicesDep) -> Response[UploadResult]:
    """Upload a bundle `.tar.gz`: verified, tested and stored, not activated.
    201 when stored, 200 when the same archive was already there."""
    actor = _actor(request)
    media_type = request.content_type[0].lower()
    if media_type not in ARCHIVE_TYPES:
        raise UnsupportedMediaTypeError(
            "send the bundle as application/gzip (or application/octet-stream)"
        )
    body = await request.body()
    result = await upload_bundle(
        services.db, body, actor=actor, rules=upload_rules(services.settings)
    )
    return Response(result, status_code=201 if result.created else 200)


async def get_bundles(request: AnyRequest, services: ServicesDep) -> list[BundleRead]:
    """Every stored bundle, newest first."""
    _actor(request)
    return await list_bundles(services.db)


async def post_activate(
    request: AnyRequest, services: ServicesDep, revision: RevisionParam
) -> BundleRead:
    """Activate a stored bundle in every process."""
    return await activate_bundle(services.db, services.redis, revision, actor=_actor(request))


async def post_rollback(
    request: AnyRequest, services: ServicesDep, data: JSONBody[RollbackRequest]
) -> BundleRead:
    """Re-activate an earlier bundle."""
    return await rollback(
        services.db, services.redis, to_revision=data.revision, actor=_actor(request)
    )


async def get_status(request: AnyRequest, services: ServicesDep) -> PolicyStatus:
    """The active bundle and the revision each process runs."""
    _actor(request)
    return await bundle_status(services.db, services.redis)


MAX_REPLAYS = 20_000  # decisions one impact request may replay (seconds of CPU, not minutes)


async def get_impact(
    services: ServicesDep,
    revision: RevisionParam,
    hours: Annotated[int, Parameter(ge=1, le=24 * 30)] = 24,
    limit: Annotated[int, Parameter(ge=1, le=MAX_REPLAYS)] = 2000,
) -> ImpactReport:
    """What activating an uploaded bundle would change: the decisions of the last `hours`
    (newest `limit`) replayed under it, counted by entrypoint and recipient, and the changed
    ones listed (first 100). Nothing is activated or logged."""
    return await bundle_impact(services.db, revision, now=utcnow(), hours=hours, limit=limit)


def _actor(request: AnyRequest) -> Actor:
    subject: Subject = current_subject(request)
    return Actor(
        name=f"{subject.kind}:{subject.id}", decision_id=current_decision_id(request) or None
    )


def build_router(settings: Settings) -> Router:
    """The bundle admin router; uploads may be as large as `max_bundle_bytes` (413 above)."""
    return Router(
        path="/v1/admin/policy",
        tags=["policy"],
        route_handlers=[
            post("/bundles", request_max_body_size=settings.max_bundle_bytes)(post_bundle),
            get("/bundles")(get_bundles),
            post("/bundles/{revision:str}/activate", status_code=200)(post_activate),
            post("/rollback", status_code=200)(post_rollback),
            get("/status")(get_status),
            get("/bundles/{revision:str}/impact")(get_impact),
        ],
    )
