"""Audit routes under `/v1/audit` (policy-guarded: compliance officers): search, one entry,
the check against the latest checkpoint, checkpoints, the witness's status, inclusion and
consistency proofs and signed exports; the checkpoint key alone is public. Exports are
audited; reads are decisions in the log."""

from datetime import datetime
from typing import Annotated, Any

from litestar import Request, Router, get, post
from litestar.params import FromQuery, JSONBody, QueryParameter

from hub.audit.checkpoints import CheckpointSigner, public_key_in
from hub.audit.export import ExportSigner
from hub.audit.proofs import consistency_proof, inclusion_proof
from hub.audit.schemas import (
    AuditEntryRead,
    AuditExport,
    AuditPage,
    AuditQuery,
    CheckpointKey,
    CheckpointPage,
    ConsistencyProof,
    ExportRequest,
    InclusionProof,
    LogReport,
    WitnessStatus,
)
from hub.audit.service import checkpoints, export_entries, read_entry, search, witness_status
from hub.audit.verify import verify_log
from hub.kit.params import INT64_MAX, NO_NUL, Position
from hub.policy.guard import current_decision_id, current_subject
from hub.runtime import ServicesDep

AnyRequest = Request[Any, Any, Any]
Filter = Annotated[str | None, QueryParameter(max_length=200, pattern=NO_NUL)]


async def get_entries(
    services: ServicesDep,
    actor: Filter = None,
    action: Filter = None,
    target: Filter = None,
    since: FromQuery[datetime | None] = None,
    until: FromQuery[datetime | None] = None,
    before_seq: Annotated[int | None, QueryParameter(ge=1, le=INT64_MAX)] = None,
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
    async with services.db.reader() as conn:  # a search may lag (replica, ADR 0016)
        return await search(conn, query, limit=limit)


async def get_entry(services: ServicesDep, seq: Position) -> AuditEntryRead:
    """One entry with its hashes."""
    return await read_entry(services.db.pool, seq)


async def get_verify(services: ServicesDep) -> LogReport:
    """Check every entry against the latest signed checkpoint; names the first bad entry."""
    key = public_key_in(services.settings.secrets_dir)
    return await verify_log(services.db.pool, key=key)


async def get_checkpoints(
    services: ServicesDep, limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 20
) -> CheckpointPage:
    """Signed checkpoints, newest first."""
    return CheckpointPage(checkpoints=await checkpoints(services.db.pool, limit=limit))


async def get_witness(services: ServicesDep) -> WitnessStatus:
    """Whether an outside witness is configured and what it has not taken yet."""
    return await witness_status(services.db.pool, witness=services.settings.audit_witness)


async def get_checkpoint_key(services: ServicesDep) -> CheckpointKey:
    """The public key that signs checkpoints (public: witnesses and verifiers need it)."""
    return CheckpointSigner.from_dir(services.settings.secrets_dir).public


async def get_inclusion(
    services: ServicesDep,
    seq: Position,
    tree_size: Annotated[int | None, QueryParameter(ge=1, le=INT64_MAX)] = None,
) -> InclusionProof:
    """RFC 9162 inclusion proof of an entry (default: in the latest checkpoint's tree)."""
    return await inclusion_proof(services.db.pool, seq, tree_size=tree_size)


async def get_consistency(
    services: ServicesDep,
    first: Annotated[int | None, QueryParameter(ge=0, le=INT64_MAX)] = None,
    second: Annotated[int | None, QueryParameter(ge=0, le=INT64_MAX)] = None,
) -> ConsistencyProof:
    """RFC 9162 consistency proof between two checkpoints' sizes (default: the newest two)."""
    return await consistency_proof(services.db.pool, first=first, second=second)


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
            get("/checkpoints")(get_checkpoints),
            get("/witness")(get_witness),
            get("/checkpoint-key", opt={"public": True})(get_checkpoint_key),
            get("/proofs/inclusion/{seq:int}")(get_inclusion),
            get("/proofs/consistency")(get_consistency),
            post("/export", status_code=200)(post_export),
        ],
    )
