"""Use cases of retention and privacy that callers (jobs, routes, CLI) start."""

from pathlib import Path

from hub.audit import AuditEntry, append_entry
from hub.kit.db import Database
from hub.kit.errors import ValidationError
from hub.policy.service import PolicyService
from hub.retention.errors import SubjectUnknownError
from hub.retention.kit import RetentionKit
from hub.retention.schemas import ForgetRequest, ForgetResult, SweepReport
from hub.retention.sweep import Progress, SweepDeps, run_sweep
from hub.retention.vault import forget_subject, rotate_master


def sweep_deps(
    db: Database,
    policy: PolicyService,
    kit: RetentionKit,
    *,
    actor: str,
    progress: Progress | None = None,
) -> SweepDeps:
    """Sweep collaborators from a process's services and settings."""
    settings = kit.settings
    return SweepDeps(
        db=db,
        policy=policy,
        media_root=Path(settings.media_dir),
        batch_size=settings.retention_batch_size,
        batch_pause_ms=settings.retention_batch_pause_ms,
        progress=progress,
        actor=actor,
        audit_witness=settings.audit_witness,
    )


async def sweep(deps: SweepDeps, *, dry_run: bool = False) -> SweepReport:
    """Run (or dry-run) one retention sweep."""
    return await run_sweep(deps, dry_run=dry_run)


async def forget(
    db: Database, kit: RetentionKit, request: ForgetRequest, *, actor: str
) -> ForgetResult:
    """Crypto-shred a subject; the audit entry names only its keyed hash."""
    if (request.plate_text is None) == (request.subject is None):
        raise ValidationError("give exactly one of plate_text and subject", code="forget_subject")
    subject = request.subject or kit.keys.plate_subject(request.plate_text or "")
    async with db.transaction() as conn:
        outcome = await forget_subject(conn, subject=subject)
        if not outcome.known:
            raise SubjectUnknownError("no personal data is stored for this subject")
        await append_entry(
            conn,
            AuditEntry(
                actor=actor,
                action="privacy.forget",
                target=f"pii_subject:{subject}",
                detail={
                    "vault_rows": outcome.vault_rows,
                    "payloads_scrubbed": outcome.payloads_scrubbed,
                    "reason": request.reason,
                },
            ),
        )
    return ForgetResult(
        subject=subject,
        known=outcome.known,
        vault_rows=outcome.vault_rows,
        payloads_scrubbed=outcome.payloads_scrubbed,
    )


async def rotate(db: Database, kit: RetentionKit, *, actor: str) -> int:
    """Re-wrap every data key under the current master key; audited."""
    async with db.transaction() as conn:
        count = await rotate_master(conn, kit.keys)
        await append_entry(
            conn,
            AuditEntry(
                actor=actor,
                action="privacy.rotate",
                target=f"pii_master_key:{kit.keys.current_id}",
                detail={"rewrapped": count},
            ),
        )
    return count
