"""Evidence packages: a ZIP of an incident (header and timeline, linked events and snapshots
as released to the exporting officer, the audit extract), a manifest of SHA-256 hashes and
the hub's Ed25519 signature over it; and the check of such a package.

Records and images enter a package only through `release()`: evidence never carries more
than the officer who exported it may see.
"""

import hashlib
import io
import zipfile
from uuid import UUID

import msgspec

from hub.audit import (
    AuditEntry,
    AuditQuery,
    ExportSigner,
    Sealer,
    SignedManifest,
    append_entry,
    prove_entries,
    search,
    verify_manifest,
)
from hub.audit.schemas import Detail
from hub.identity.schemas import Subject
from hub.incidents import cases
from hub.kit.clock import Clock, utcnow
from hub.kit.db import Database
from hub.kit.errors import BadRequestError
from hub.policy.guard import Decider

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PUBLIC_KEY = "public_key.pem"
PROOFS = "audit_proofs.json"
MAX_PACKAGE_BYTES = 200 * 1024 * 1024
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png"}


class EvidenceCheck(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of verifying a package against the hub's export key."""

    ok: bool
    files: int
    key_id: str | None
    problems: list[str]


async def export_evidence(
    db: Database,
    policy: Decider,
    incident_id: UUID,
    *,
    subject: Subject,
    hash_key: bytes,
    media_root: str,
    signer: ExportSigner,
    decision_id: str | None,
    sealer: Sealer | None = None,
    clock: Clock = utcnow,
) -> tuple[str, bytes]:
    """The package's file name and bytes; the export is audited. With a `sealer`, the audit
    entries are sealed, checkpointed and carried with inclusion proofs (audit_proofs.json,
    checked offline by `hub audit verify-proofs`)."""
    now = clock()
    incident, notes, rows = await cases.read_for_export(db, incident_id)
    files: dict[str, bytes] = {
        "incident.json": _json({"incident": incident, "timeline": notes}),
    }
    events, media = [], {}
    for row in rows:
        released = await cases.release_event(
            policy, row, subject=subject, data_class="detection_event", hash_key=hash_key
        )
        events.append(
            {
                "event_id": str(row.event_id),
                "allowed": released.allowed,
                "reason": released.reason,
                "decision_id": released.decision_id,
                "record": released.record,
                "redactions": msgspec.to_builtins(released.manifest),
            }
        )
        for sha in cases.media_of(row) if released.allowed else []:
            image = await _released_image(db, policy, row, sha, subject, hash_key, media_root)
            if image is not None:
                media[f"media/{sha}.{image[1]}"] = image[0]
    files["events.json"] = _json(events)
    files.update(media)
    audit = await search(db.pool, AuditQuery(target=f"incident:{incident_id}"), limit=10_000)
    files["audit.json"] = _json(audit.entries)
    if sealer is not None:
        await sealer.run(force_checkpoint=True)
        seqs = [e.seq for e in audit.entries]
        files[PROOFS] = _json(await prove_entries(db.pool, seqs, key=sealer.key))
    signed = signer.sign(files, kind="incident_evidence", at=now)
    package = _zip(files, signed)
    await _audit(db, subject, incident_id, signed, len(files), decision_id)
    return f"incident-{incident_id}-{now.strftime('%Y%m%dT%H%M%SZ')}.zip", package


def verify_evidence(package: bytes, *, signer: ExportSigner) -> EvidenceCheck:
    """Check a package: every file listed with the right hash, nothing extra, and the
    manifest signed by this hub's export key."""
    if len(package) > MAX_PACKAGE_BYTES:
        raise BadRequestError("the package is too large", code="evidence_too_large")
    try:
        with zipfile.ZipFile(io.BytesIO(package)) as archive:
            contents = {name: archive.read(name) for name in archive.namelist()}
    except (zipfile.BadZipFile, ValueError):
        return EvidenceCheck(ok=False, files=0, key_id=None, problems=["not a ZIP archive"])
    manifest, signature = contents.pop(MANIFEST, None), contents.pop(SIGNATURE, None)
    contents.pop(PUBLIC_KEY, None)
    if manifest is None or signature is None:
        return EvidenceCheck(
            ok=False, files=len(contents), key_id=None, problems=["manifest or signature missing"]
        )
    signed = SignedManifest(
        manifest=manifest.decode("utf-8", errors="replace"),
        signature=signature.decode("ascii", errors="replace").strip(),
        key_id=signer.key_id,
        public_key=signer.public_pem,
    )
    problems = verify_manifest(signed, contents, trusted_pem=signer.public_pem)
    return EvidenceCheck(
        ok=not problems, files=len(contents), key_id=signer.key_id, problems=problems
    )


async def _released_image(
    db: Database,
    policy: Decider,
    row: cases.EventRow,
    sha: str,
    subject: Subject,
    hash_key: bytes,
    media_root: str,
) -> tuple[bytes, str] | None:
    shown = await cases.release_linked_media(
        db, policy, [row], sha, subject=subject, hash_key=hash_key, media_root=media_root
    )
    return None if shown is None else (shown[0], EXTENSIONS.get(shown[1], "bin"))


def _zip(files: dict[str, bytes], signed: SignedManifest) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            archive.writestr(name, data)
        archive.writestr(MANIFEST, signed.manifest)
        archive.writestr(SIGNATURE, signed.signature)
        archive.writestr(PUBLIC_KEY, signed.public_key)
    return buffer.getvalue()


def _json(value: object) -> bytes:
    return msgspec.json.format(msgspec.json.encode(value), indent=2)


async def _audit(
    db: Database,
    subject: Subject,
    incident_id: UUID,
    signed: SignedManifest,
    files: int,
    decision_id: str | None,
) -> None:
    detail: Detail = {
        "files": files,
        "manifest_sha256": hashlib.sha256(signed.manifest.encode()).hexdigest(),
        "key_id": signed.key_id,
    }
    async with db.transaction() as conn:
        await append_entry(
            conn,
            AuditEntry(
                actor=f"{subject.kind}:{subject.id}",
                action="incident.export",
                target=f"incident:{incident_id}",
                detail=detail,
                decision_id=decision_id,
            ),
        )
