"""Officer routes of legal holds under `/v1/holds` (policy-guarded: compliance officers)."""

from typing import Any, Literal
from uuid import UUID

from litestar import Request, Response, Router, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from hub.identity.schemas import Subject
from hub.incidents.holds.schemas import HoldCreate, HoldRead
from hub.incidents.holds.service import add_hold, list_holds, release_hold
from hub.policy.guard import current_subject
from hub.runtime import ServicesDep

AnyRequest = Request[Any, Any, Any]


def _actor(request: AnyRequest) -> str:
    subject: Subject = current_subject(request)
    return f"{subject.kind}:{subject.id}"


async def post_hold(
    request: AnyRequest, services: ServicesDep, data: JSONBody[HoldCreate]
) -> Response[HoldRead]:
    """Place a legal hold."""
    hold = await add_hold(services.db, data, actor=_actor(request))
    return Response(hold, status_code=201)


async def get_holds(
    services: ServicesDep,
    status: FromQuery[Literal["active", "released"] | None] = None,
) -> list[HoldRead]:
    """Holds, newest first, with the number of events each covers."""
    return await list_holds(services.db, status=status)


async def post_release(
    request: AnyRequest, services: ServicesDep, hold_id: FromPath[UUID]
) -> HoldRead:
    """Ask for a release, or confirm another officer's request (409 for the same officer)."""
    return await release_hold(services.db, hold_id, actor=_actor(request))


def build_router() -> Router:
    """The holds router."""
    return Router(
        path="/v1/holds",
        tags=["holds"],
        route_handlers=[
            post("/", status_code=201)(post_hold),
            get("/")(get_holds),
            post("/{hold_id:uuid}/release", status_code=200)(post_release),
        ],
    )
