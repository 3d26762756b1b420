"""Admin routes of retention (`/v1/admin/retention`, admins) and privacy (`/v1/privacy`,
compliance officers); the policy guard authorises both by route."""

from typing import Any

from litestar import Request, Router, get, post
from litestar.params import JSONBody

from hub.identity.schemas import Subject
from hub.policy.guard import current_subject
from hub.retention.schemas import ForgetRequest, ForgetResult, SweepReport
from hub.retention.service import forget, sweep, sweep_deps
from hub.runtime import ServicesDep

AnyRequest = Request[Any, Any, Any]


def _actor(request: AnyRequest) -> str:
    subject: Subject = current_subject(request)
    return f"{subject.kind}:{subject.id}"


async def get_report(request: AnyRequest, services: ServicesDep) -> SweepReport:
    """What a sweep would delete now, by data class (a dry run: nothing is written)."""
    deps = sweep_deps(services.db, services.policy, services.retention, actor=_actor(request))
    return await sweep(deps, dry_run=True)


async def post_run(request: AnyRequest, services: ServicesDep) -> SweepReport:
    """Run a sweep now (409 while another one runs)."""
    deps = sweep_deps(services.db, services.policy, services.retention, actor=_actor(request))
    return await sweep(deps)


async def post_forget(
    request: AnyRequest, services: ServicesDep, data: JSONBody[ForgetRequest]
) -> ForgetResult:
    """Crypto-shred a subject (by plate text or subject hash)."""
    return await forget(services.db, services.retention, data, actor=_actor(request))


def build_router() -> Router:
    """Retention (admin) and privacy (officer) routes."""
    return Router(
        path="/v1",
        tags=["retention"],
        route_handlers=[
            get("/admin/retention/report")(get_report),
            post("/admin/retention/run", status_code=200)(post_run),
            post("/privacy/forget", status_code=200)(post_forget),
        ],
    )
