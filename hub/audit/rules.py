"""Pure hashing rules of the audit chain."""

import hashlib
from datetime import UTC, datetime

import msgspec

from hub.audit.schemas import Detail, StoredEntry

GENESIS = bytes(32)  # prev_hash of the first entry


def entry_body(
    *,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    detail: Detail,
    decision_id: str | None,
    trace_id: str | None,
) -> bytes:
    """Canonical (sorted-key) JSON of an entry without its seq: the bytes that are hashed."""
    return msgspec.json.encode(
        {
            "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "target": target,
            "detail": detail,
            "decision_id": decision_id,
            "trace_id": trace_id,
        },
        order="sorted",
    )


def entry_hash(*, prev_hash: bytes, seq: int, body: bytes) -> bytes:
    """SHA-256 over the previous hash, the seq (8 bytes, big-endian) and the body; the
    database computes the same in `audit_append()`."""
    return hashlib.sha256(prev_hash + seq.to_bytes(8, "big", signed=True) + body).digest()


def check_link(entry: StoredEntry, *, expected_seq: int, prev_hash: bytes) -> str | None:
    """Why this entry breaks the chain after `prev_hash`, or None when it links correctly."""
    if entry.seq != expected_seq:
        return f"entry {expected_seq} is missing (next present is {entry.seq})"
    if entry.prev_hash != prev_hash:
        return f"entry {entry.seq} does not point at the hash of entry {entry.seq - 1}"
    body = entry_body(
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        detail=entry.detail,
        decision_id=entry.decision_id,
        trace_id=entry.trace_id,
    )
    recomputed = entry_hash(prev_hash=prev_hash, seq=entry.seq, body=body)
    if recomputed != entry.hash:
        return f"entry {entry.seq} was altered (its content no longer matches its hash)"
    return None
