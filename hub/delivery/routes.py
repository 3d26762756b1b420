"""Admin routes of agencies and deliveries under `/v1/admin` (policy-guarded: admins only).

Handlers read the subject the guard left and call the domain's use cases; every change is
audited by those use cases.
"""

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Request, Response, Router, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, PathParameter, QueryParameter

from hub.delivery import deadletters
from hub.delivery.agencies import (
    TestResult,
    add_agency,
    agency_health,
    get_agency,
    pause_agency,
    resume_agency,
    send_test,
    update_agency,
)
from hub.delivery.schemas import (
    AgencyCreate,
    AgencyHealth,
    AgencyRead,
    AgencyUpdate,
    DeliveryDetail,
    DeliveryRead,
    DeliveryStatus,
    ReplayRange,
    ReplayResult,
)
from hub.identity.schemas import Subject
from hub.kit.params import NO_NUL
from hub.policy.guard import current_subject
from hub.runtime import ServicesDep

AnyRequest = Request[Any, Any, Any]
AgencyRef = Annotated[
    str, PathParameter(max_length=128, pattern=NO_NUL, description="Agency name or id")
]


class PauseRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Why the agency is paused (kept on the agency and in the audit trail)."""

    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=NO_NUL)]


def _actor(request: AnyRequest) -> str:
    subject: Subject = current_subject(request)
    return f"{subject.kind}:{subject.id}"


async def post_agency(
    request: AnyRequest, services: ServicesDep, data: JSONBody[AgencyCreate]
) -> Response[AgencyRead]:
    """Register an agency; its adapter validates the configuration first (422 naming the
    field otherwise)."""
    agency = await add_agency(services.db, services.delivery.adapters, data, actor=_actor(request))
    return Response(agency, status_code=201)


async def get_agencies(services: ServicesDep) -> list[AgencyHealth]:
    """Every agency with its circuit breaker and delivery counts by status."""
    return await agency_health(services.db, services.delivery.breaker)


async def patch_agency(
    request: AnyRequest, services: ServicesDep, agency: AgencyRef, data: JSONBody[AgencyUpdate]
) -> AgencyRead:
    """Change an agency's settings: `ordering` none | agency | camera (FIFO for receivers
    that need order; a failed head then blocks its agency, or its camera, until it is
    delivered or dead-lettered)."""
    kit = services.delivery
    return await update_agency(services.db, kit.queue, agency, data, actor=_actor(request))


async def post_pause(
    request: AnyRequest, services: ServicesDep, agency: AgencyRef, data: JSONBody[PauseRequest]
) -> AgencyRead:
    """Stop deliveries to an agency; they wait in the ledger."""
    return await pause_agency(services.db, agency, reason=data.reason, actor=_actor(request))


async def post_resume(request: AnyRequest, services: ServicesDep, agency: AgencyRef) -> AgencyRead:
    """Resume deliveries and queue what waited."""
    kit = services.delivery
    return await resume_agency(services.db, kit.breaker, kit.queue, agency, actor=_actor(request))


async def post_test(request: AnyRequest, services: ServicesDep, agency: AgencyRef) -> TestResult:
    """Send a signed test message to the agency and show its receipt (or the error)."""
    _, found = await get_agency(services.db, agency)
    return await send_test(services.audit, services.delivery.adapters, found, actor=_actor(request))


async def get_deliveries(
    services: ServicesDep,
    status: FromQuery[DeliveryStatus | None] = "dead",
    agency: Annotated[str | None, QueryParameter(max_length=128, pattern=NO_NUL)] = None,
    since: FromQuery[datetime | None] = None,
    until: FromQuery[datetime | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=deadletters.MAX_LIST)] = 100,
) -> list[DeliveryRead]:
    """Deliveries, newest first; dead letters unless `status` says otherwise."""
    return await deadletters.list_deliveries(
        services.db, status=status, agency=agency, since=since, until=until, limit=limit
    )


async def get_delivery(services: ServicesDep, delivery_id: FromPath[UUID]) -> DeliveryDetail:
    """One delivery with every attempt."""
    return await deadletters.inspect(services.db, delivery_id)


async def post_replay_one(
    request: AnyRequest, services: ServicesDep, delivery_id: FromPath[UUID]
) -> DeliveryRead:
    """Send a dead letter again: a new attempt on the same delivery id."""
    kit = services.delivery
    return await deadletters.replay_one(
        services.db,
        kit.queue,
        delivery_id,
        actor=_actor(request),
        extra_attempts=kit.extra_attempts,
    )


async def post_replay_range(
    request: AnyRequest, services: ServicesDep, data: JSONBody[ReplayRange]
) -> ReplayResult:
    """Send again every dead letter that died in a time range (optionally one agency's)."""
    kit = services.delivery
    return await deadletters.replay_range(
        services.db, kit.queue, data, actor=_actor(request), extra_attempts=kit.extra_attempts
    )


def build_router() -> Router:
    """The agency and delivery admin router."""
    return Router(
        path="/v1/admin",
        tags=["delivery"],
        route_handlers=[
            post("/agencies")(post_agency),
            get("/agencies")(get_agencies),
            patch("/agencies/{agency:str}")(patch_agency),
            post("/agencies/{agency:str}/pause", status_code=200)(post_pause),
            post("/agencies/{agency:str}/resume", status_code=200)(post_resume),
            post("/agencies/{agency:str}/test", status_code=200)(post_test),
            get("/deliveries")(get_deliveries),
            post("/deliveries/replay", status_code=200)(post_replay_range),
            get("/deliveries/{delivery_id:uuid}")(get_delivery),
            post("/deliveries/{delivery_id:uuid}/replay", status_code=200)(post_replay_one),
        ],
    )
