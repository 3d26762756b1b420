"""Decision routes under `/v1/decisions` (officers and admins): look a decision up, list the
release decisions of an event, replay one under the active bundle; and the Rego sources of a
bundle revision under `/v1/admin/policy` (admins)."""

from datetime import datetime
from typing import Annotated, Any

from litestar import Request, Router, get, post
from litestar.params import FromQuery, PathParameter, QueryParameter

from hub.kit.params import NO_NUL, UUID_PATTERN
from hub.policy.bundles.archive import REVISION_PATTERN
from hub.policy.decision_search import DecisionPage, DecisionQuery, Outcome, search_decisions
from hub.policy.decisions import (
    BundleSources,
    DecisionRead,
    ReplayRead,
    bundle_sources,
    decisions_for_event,
    find_decision,
    replay_decision,
)
from hub.policy.guard import current_decision_id, current_subject
from hub.runtime import ServicesDep

AnyRequest = Request[Any, Any, Any]
DecisionId = Annotated[
    str, PathParameter(max_length=64, pattern=NO_NUL, description="A decision id")
]
RevisionParam = Annotated[str, PathParameter(pattern=REVISION_PATTERN)]
EventId = Annotated[
    str,
    QueryParameter(pattern=UUID_PATTERN, description="A detection event id (uuid)"),
]


async def get_decision(services: ServicesDep, decision_id: DecisionId) -> DecisionRead:
    """One logged decision (input as masked by `system/log/mask`)."""
    return await find_decision(services.db, decision_id, stale_ok=True)


async def get_event_decisions(services: ServicesDep, event_id: EventId) -> list[DecisionRead]:
    """The release decisions of every delivery of one event, newest first."""
    return await decisions_for_event(services.db, event_id)


Filter = Annotated[str | None, QueryParameter(max_length=200, pattern=NO_NUL)]


async def get_decision_list(
    services: ServicesDep,
    since: FromQuery[datetime | None] = None,
    until: FromQuery[datetime | None] = None,
    recipient: Filter = None,
    entrypoint: Filter = None,
    outcome: FromQuery[Outcome | None] = None,
    revision: Filter = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
) -> DecisionPage:
    """Logged decisions newest first, filtered by time [since, until), recipient (release
    recipient, authz subject, node or agency), entrypoint, outcome and bundle revision."""
    query = DecisionQuery(
        since=since,
        until=until,
        recipient=recipient or None,
        entrypoint=entrypoint or None,
        outcome=outcome,
        revision=revision or None,
    )
    return await search_decisions(services.db, query, limit=limit)


async def post_replay(
    request: AnyRequest, services: ServicesDep, decision_id: DecisionId
) -> ReplayRead:
    """Re-evaluate a logged decision under the active bundle and show the differences."""
    subject = current_subject(request)
    return await replay_decision(
        services.db,
        services.policy,
        decision_id,
        audit=services.audit,
        actor=f"{subject.kind}:{subject.id}",
        authz_decision_id=current_decision_id(request) or None,
    )


async def get_sources(services: ServicesDep, revision: RevisionParam) -> BundleSources:
    """The Rego modules and data of a bundle revision (stored, or the default folder's)."""
    return await bundle_sources(services.db, revision, default_dir=services.settings.policy_dir)


def build_router() -> Router:
    """Decision look-up and replay, and bundle sources."""
    return Router(
        path="/v1",
        tags=["decisions"],
        route_handlers=[
            get("/decisions")(get_event_decisions),
            get("/decisions/search")(get_decision_list),
            get("/decisions/{decision_id:str}")(get_decision),
            post("/decisions/{decision_id:str}/replay", status_code=200)(post_replay),
            get("/admin/policy/bundles/{revision:str}/sources")(get_sources),
        ],
    )
