"""Use cases of bundle management; each opens its own transaction and writes an audit entry.

Upload checks, in order: archive safety, signature, that the bundle loads, that its Rego
tests pass. A refusal before the signature is verified stores nothing (the bytes are not
trusted) but is audited. A verified bundle that will not load or fails a test is stored as
`rejected` with its report, so the audit trail shows what was tried and why it was stopped,
and a fixed bundle may be uploaded again under the same revision. Upload never changes the
active bundle; activation and rollback do, atomically, and then notify every process.
"""

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import asyncpg
from redis.exceptions import RedisError

from hub.audit import AuditEntry, append_entry
from hub.audit.schemas import Detail
from hub.kit.clock import Clock, utcnow
from hub.kit.db import Database
from hub.kit.redis import RedisStore
from hub.policy.bundles import repository
from hub.policy.bundles.archive import (
    MANIFEST,
    ArchiveLimits,
    BundleArchive,
    BundleFiles,
    read_archive,
)
from hub.policy.bundles.errors import BundleError
from hub.policy.bundles.keys import VerifyKey
from hub.policy.bundles.notices import publish_activation, read_process_revisions
from hub.policy.bundles.schemas import (
    BundleRead,
    PolicyStatus,
    ProcessRevision,
    RegoTestSummary,
    UploadResult,
)
from hub.policy.bundles.signing import SignatureCheck, verify_bundle
from hub.policy.bundles.testing import check_isolated

# Loads a bundle's files and runs its tests; never raises for a bad bundle, reports it.
BundleChecker = Callable[[BundleFiles], Awaitable[RegoTestSummary]]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts, for the registry and the audit log, and the authz decision that let them."""

    name: str
    decision_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadRules:
    """What an upload is checked against (built from settings by `upload_rules`)."""

    keys: Mapping[str, VerifyKey]
    signing_required: bool
    limits: ArchiveLimits = field(default_factory=ArchiveLimits)
    check: BundleChecker = check_isolated


async def upload_bundle(
    db: Database, archive: bytes, *, actor: Actor, rules: UploadRules, clock: Clock = utcnow
) -> UploadResult:
    """Verify, test and store a bundle as `uploaded` (or `rejected`, then raise 422)."""
    try:
        bundle = read_archive(archive, limits=rules.limits)
        signature = verify_bundle(bundle.files, keys=rules.keys, required=rules.signing_required)
    except BundleError as exc:
        detail: Detail = {"code": exc.code, "sha256": hashlib.sha256(archive).hexdigest()}
        async with db.transaction() as conn:
            await _audit(conn, actor, "policy.bundle.refuse", "-", detail, clock)
        raise
    report = await rules.check(bundle.files)
    stored = await _store(db, bundle, archive, report, signature, actor=actor, clock=clock)
    if report.error is not None or report.failed:
        raise _rejection(bundle.manifest.revision, report)
    return stored


async def activate_bundle(
    db: Database, redis: RedisStore, revision: str, *, actor: Actor, clock: Clock = utcnow
) -> BundleRead:
    """Make `revision` the active bundle in every process (idempotent when it already is)."""
    return await _switch(db, redis, revision, actor=actor, rollback=False, clock=clock)


async def rollback(
    db: Database, redis: RedisStore, *, to_revision: str, actor: Actor, clock: Clock = utcnow
) -> BundleRead:
    """Re-activate an earlier bundle, one that has been active before."""
    return await _switch(db, redis, to_revision, actor=actor, rollback=True, clock=clock)


async def list_bundles(db: Database) -> list[BundleRead]:
    """Every stored bundle, newest upload first."""
    return await repository.select_bundles(db.pool)


async def bundle_status(db: Database, redis: RedisStore, *, clock: Clock = utcnow) -> PolicyStatus:
    """The active bundle (when, by whom) and the revision each live process runs."""
    active = await repository.active_bundle(db.pool)
    processes, problem = [], None
    try:
        processes = await read_process_revisions(redis, clock=clock)
    except (RedisError, OSError) as exc:  # PostgreSQL's answer still stands
        problem = f"per-process revisions unavailable: {type(exc).__name__}"
    revision = None if active is None else active.revision
    return PolicyStatus(
        active_revision=revision,
        activated_at=None if active is None else active.activated_at,
        activated_by=None if active is None else active.activated_by,
        processes=processes,
        converged=_converged(revision, processes),
        processes_error=problem,
    )


def _converged(active: str | None, processes: list[ProcessRevision]) -> bool:
    """Every live process runs one revision: the active one, or (no bundle uploaded) the same
    default bundle; a hub with no process reporting has not converged."""
    running = {p.revision for p in processes}
    return len(running) == 1 and (active is None or running == {active})


async def load_active(db: Database) -> tuple[str, BundleFiles] | None:
    """The active bundle's revision and files, for start-up and swaps (None when none is)."""
    stored = await repository.active_archive(db.pool)
    if stored is None:
        return None
    generous = ArchiveLimits.for_archive(max(len(stored.archive), 1))
    bundle = read_archive(stored.archive, limits=generous)
    if bundle.sha256 != stored.sha256:
        raise BundleError(
            f"stored archive of {stored.revision} does not match its checksum",
            code="bundle_malformed",
        )
    return stored.revision, bundle.files


async def active_revision(db: Database) -> str | None:
    """Only the active revision (cheap; the watcher's safety-net check)."""
    return await repository.active_revision(db.pool)


async def _store(
    db: Database,
    bundle: BundleArchive,
    archive: bytes,
    report: RegoTestSummary,
    signature: SignatureCheck | None,
    *,
    actor: Actor,
    clock: Clock,
) -> UploadResult:
    revision = bundle.manifest.revision
    rejected = report.error is not None or report.failed > 0
    async with db.transaction() as conn:
        now = clock()
        saved = await repository.save_bundle(
            conn,
            revision=revision,
            sha256=bundle.sha256,
            status="rejected" if rejected else "uploaded",
            manifest=bundle.files[MANIFEST],
            archive=archive,
            report=report,
            actor=actor.name,
            now=now,
        )
        if saved is None:
            return await _existing(conn, revision, bundle.sha256, signature)
        detail: Detail = {
            "sha256": bundle.sha256,
            "signed_by": None if signature is None else signature.key_id,
            "tests_passed": report.passed,
            "tests_failed": report.failing,
        }
        action = "policy.bundle.reject" if rejected else "policy.bundle.upload"
        await _audit(conn, actor, action, revision, detail, clock)
    return UploadResult(
        bundle=saved, created=True, signed_by=None if signature is None else signature.key_id
    )


async def _existing(
    conn: asyncpg.Connection, revision: str, sha256: str, signature: SignatureCheck | None
) -> UploadResult:
    """The same archive again is a no-op; another archive under a taken revision is not."""
    existing = await repository.find_bundle(conn, revision)
    if existing is None or existing.sha256 != sha256:
        raise BundleError(
            f"revision {revision} is already stored with other content; "
            "bump the revision in .manifest",
            code="bundle_revision_exists",
        )
    return UploadResult(
        bundle=existing, created=False, signed_by=None if signature is None else signature.key_id
    )


async def _switch(
    db: Database, redis: RedisStore, revision: str, *, actor: Actor, rollback: bool, clock: Clock
) -> BundleRead:
    async with db.transaction() as conn:
        await repository.lock_activation(conn)
        target = _check_target(
            await repository.find_bundle(conn, revision, for_update=True),
            revision,
            rollback=rollback,
        )
        if target.status == "active":
            return target
        previous = await repository.retire_active(conn)
        now = clock()
        activated = await repository.mark_active(conn, revision, actor=actor.name, now=now)
        action = "policy.bundle.rollback" if rollback else "policy.bundle.activate"
        detail: Detail = {"previous": previous, "sha256": target.sha256}
        await _audit(conn, actor, action, revision, detail, clock)
    await publish_activation(redis, revision, clock=clock)
    return activated


def _check_target(target: BundleRead | None, revision: str, *, rollback: bool) -> BundleRead:
    if target is None:
        raise BundleError(f"no bundle with revision {revision}", code="bundle_not_found")
    if target.status == "rejected":
        raise BundleError(
            f"bundle {revision} was rejected at upload and cannot be activated",
            code="bundle_not_activatable",
        )
    if rollback and target.status != "retired":
        state = "already active" if target.status == "active" else "never active"
        raise BundleError(
            f"cannot roll back to {revision}: it is {state}", code="bundle_not_activatable"
        )
    return target


def _rejection(revision: str, report: RegoTestSummary) -> BundleError:
    if report.error is not None:
        return BundleError(
            f"bundle {revision} does not load: {report.error}",
            code="bundle_invalid",
            extra={"revision": revision},
        )
    return BundleError(
        f"bundle {revision}: {report.failed} of {report.passed + report.failed} tests failed",
        code="bundle_tests_failed",
        extra={"revision": revision, "failed_tests": report.failing},
    )


async def _audit(
    conn: asyncpg.Connection,
    actor: Actor,
    action: str,
    revision: str,
    detail: Detail,
    clock: Clock,
) -> None:
    entry = AuditEntry(
        actor=actor.name,
        action=action,
        target=f"policy_bundle:{revision}",
        detail=detail,
        decision_id=actor.decision_id,
    )
    await append_entry(conn, entry, clock=clock)
