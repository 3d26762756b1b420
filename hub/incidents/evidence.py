"""Evidence packages: a ZIP of an incident (header and timeline, linked events and snapshots
as released to the exporting officer, the audit extract), a manifest of SHA-256 hashes and
the hub's Ed25519 signature over it; and the check of such a package.

Records and images enter a package only through `release()`: evidence never carries more
than the officer who exported it may see.
"""

import hashlib
import io
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO
from uuid import UUID

import msgspec

from hub.audit import (
    AuditAppender,
    AuditEntry,
    AuditQuery,
    ExportSigner,
    Sealer,
    SignedManifest,
    prove_entries,
    search,
    verify_manifest_digests,
)
from hub.audit.schemas import Detail
from hub.identity.schemas import Subject
from hub.incidents import cases
from hub.kit.clock import Clock, utcnow
from hub.kit.db import Database
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
    audit: AuditAppender,
    decision_id: str | None,
    sealer: Sealer | None = None,
    clock: Clock = utcnow,
) -> tuple[str, bytes]:
    """The package's file name and bytes; the export is audited (through the process's
    appender: the entry is the export's only write) before the package is handed out. With a
    `sealer`, the audit entries are sealed, checkpointed and carried with inclusion proofs
    (audit_proofs.json, checked offline by `hub audit verify-proofs`)."""
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
    extract = await search(db.pool, AuditQuery(target=f"incident:{incident_id}"), limit=10_000)
    files["audit.json"] = _json(extract.entries)
    if sealer is not None:
        await sealer.run(force_checkpoint=True)
        seqs = [e.seq for e in extract.entries]
        files[PROOFS] = _json(await prove_entries(db.pool, seqs, key=sealer.key))
    signed = signer.sign(files, kind="incident_evidence", at=now)
    package = _zip(files, signed)
    await audit.append(_audit_entry(subject, incident_id, signed, len(files), decision_id))
    return f"incident-{incident_id}-{now.strftime('%Y%m%dT%H%M%SZ')}.zip", package


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """What a package may hold, judged from its central directory before any member is read.

    Exported packages are a few JSON files and images (compression ratios near 1 for images,
    rarely past 20 for JSON): a 1 MB ZIP that inflates to gigabytes is refused unread.
    """

    max_members: int = 10_000
    max_member_bytes: int = MAX_PACKAGE_BYTES
    max_total_bytes: int = 2 * MAX_PACKAGE_BYTES
    max_ratio: int = 100
    ratio_floor_bytes: int = 1 << 20  # smaller members cannot hurt, whatever their ratio
    max_manifest_bytes: int = 16 << 20


_CHUNK = 1 << 20
_SIGNED_FILES = (MANIFEST, SIGNATURE, PUBLIC_KEY)


def verify_evidence(
    package: IO[bytes], *, signer: ExportSigner, limits: ArchiveLimits | None = None
) -> EvidenceCheck:
    """Check a package: every file listed with the right hash, nothing extra, and the
    manifest signed by this hub's export key. Members are hashed as streams, so memory stays
    at one chunk whatever the package holds; blocking, so run it off the event loop."""
    limits = limits or ArchiveLimits()
    try:
        with zipfile.ZipFile(package) as archive:
            members = archive.infolist()
            problem = _directory_problem(members, limits)
            if problem is not None:
                return _refused(problem, files=len(members))
            return _check_members(archive, members, signer, limits)
    except (zipfile.BadZipFile, NotImplementedError, EOFError, zlib.error):
        return _refused("not a ZIP archive (or a damaged one)", files=0)
    except ValueError as exc:
        return _refused(str(exc), files=0)


def _refused(problem: str, *, files: int) -> EvidenceCheck:
    return EvidenceCheck(ok=False, files=files, key_id=None, problems=[problem])


def _directory_problem(members: list[zipfile.ZipInfo], limits: ArchiveLimits) -> str | None:
    """What makes the archive unsafe to read, from its central directory alone."""
    if len(members) > limits.max_members:
        return f"more than {limits.max_members} files"
    if len({m.filename for m in members}) != len(members):
        return "a file name appears twice"
    if sum(m.file_size for m in members) > limits.max_total_bytes:
        return f"files larger than {limits.max_total_bytes} bytes in all"
    for member in members:
        if member.file_size > limits.max_member_bytes:
            return f"{member.filename} is larger than {limits.max_member_bytes} bytes"
        big = member.file_size > limits.ratio_floor_bytes
        if big and member.file_size > limits.max_ratio * max(member.compress_size, 1):
            return f"{member.filename} is compressed more than {limits.max_ratio} to 1"
    return None


def _check_members(
    archive: zipfile.ZipFile,
    members: list[zipfile.ZipInfo],
    signer: ExportSigner,
    limits: ArchiveLimits,
) -> EvidenceCheck:
    names = {m.filename: m for m in members}
    content = [m for m in members if m.filename not in _SIGNED_FILES]
    if MANIFEST not in names or SIGNATURE not in names:
        return _refused("manifest or signature missing", files=len(content))
    manifest = _read_small(archive, names[MANIFEST], limits.max_manifest_bytes)
    signature = _read_small(archive, names[SIGNATURE], limits.max_manifest_bytes)
    signed = SignedManifest(
        manifest=manifest.decode("utf-8", errors="replace"),
        signature=signature.decode("ascii", errors="replace").strip(),
        key_id=signer.key_id,
        public_key=signer.public_pem,
    )
    digests = {m.filename: _stream_digest(archive, m) for m in content}
    problems = verify_manifest_digests(signed, digests, trusted_pem=signer.public_pem)
    return EvidenceCheck(
        ok=not problems, files=len(content), key_id=signer.key_id, problems=problems
    )


def _read_small(archive: zipfile.ZipFile, member: zipfile.ZipInfo, limit: int) -> bytes:
    """A member that must be small (manifest, signature), read no further than `limit`."""
    if member.file_size > limit:
        raise ValueError(f"{member.filename} is too large")
    with archive.open(member) as stream:
        data = stream.read(limit + 1)
    if len(data) > member.file_size:
        raise ValueError(f"{member.filename} is longer than its directory entry says")
    return data


def _stream_digest(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> str:
    """SHA-256 of a member, inflated one chunk at a time and never past its declared size
    (a directory entry that lies about the size does not buy more output)."""
    digest, seen = hashlib.sha256(), 0
    with archive.open(member) as stream:
        while chunk := stream.read(_CHUNK):
            seen += len(chunk)
            if seen > member.file_size:
                raise ValueError(f"{member.filename} is longer than its directory entry says")
            digest.update(chunk)
    return digest.hexdigest()


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


def _audit_entry(
    subject: Subject,
    incident_id: UUID,
    signed: SignedManifest,
    files: int,
    decision_id: str | None,
) -> AuditEntry:
    detail: Detail = {
        "files": files,
        "manifest_sha256": hashlib.sha256(signed.manifest.encode()).hexdigest(),
        "key_id": signed.key_id,
    }
    return AuditEntry(
        actor=f"{subject.kind}:{subject.id}",
        action="incident.export",
        target=f"incident:{incident_id}",
        detail=detail,
        decision_id=decision_id,
    )
