"""Audit routes under `/v1/audit` (policy-guarded: compliance officers): search, one entry,
the chain check and signed exports. Exports are audited; reads are decisions in the log."""

from datetime import datetime
from typing import Annotated, Any

from litestar import Request, Router, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from hub.audit.export import ExportSigner
from hub.audit.schemas import (
    AuditEntryRead,
    AuditExport,
    AuditPage,
    AuditQuery,
    ChainReport,
    ExportRequest,
)
from hub.audit.service import export_entries, read_entry, search, verify_chain
from hub.policy.guard import current_decision_id, current_subject
from hub.runtime import ServicesDep

AnyRequest = Request[Any, Any, Any]
Filter = Annotated[str | None, QueryParameter(max_length=200)]


async def get_entries(
    services: ServicesDep,
    actor: Filter = None,
    action: Filter = None,
    target: Filter = None,
    since: FromQuery[datetime | None] = None,
    until: FromQuery[datetime | None] = None,
    before_seq: Annotated[int | None, QueryParameter(ge=1)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
) -> AuditPage:
    """Entries newest first: actor/action by prefix, target by substring, [since, until);
    pass `next_before_seq` back as `before_seq` for the next page."""
    query = AuditQuery(
        actor=actor or None,
        action=action or None,
        target=target or None,
        since=since,
        until=until,
        before_seq=before_seq,
    )
    return await search(services.db.pool, query, limit=limit)


async def get_entry(services: ServicesDep, seq: FromPath[int]) -> AuditEntryRead:
    """One entry with its hashes."""
    return await read_entry(services.db.pool, seq)


async def get_verify(services: ServicesDep) -> ChainReport:
    """Walk the whole chain; `broken_at` names the first bad link."""
    return await verify_chain(services.db.pool)


async def post_export(
    request: AnyRequest, services: ServicesDep, data: JSONBody[ExportRequest]
) -> AuditExport:
    """A filtered range as CSV or JSON with a manifest signed by the hub's export key."""
    subject = current_subject(request)
    return await export_entries(
        services.db.pool,
        data,
        signer=ExportSigner.from_dir(services.settings.secrets_dir),
        actor=f"{subject.kind}:{subject.id}",
        decision_id=current_decision_id(request) or None,
    )


def build_router() -> Router:
    """The audit router."""
    return Router(
        path="/v1/audit",
        tags=["audit"],
        route_handlers=[
            get("/entries")(get_entries),
            get("/entries/{seq:int}")(get_entry),
            get("/verify")(get_verify),
            post("/export", status_code=200)(post_export),
        ],
    )
