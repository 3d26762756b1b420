"""Audit entries as they are written and the result of a chain check."""

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

# Only JSON-safe scalars and containers of them; never raw PII (store hashes or ids).
Detail = dict[str, str | int | bool | list[str] | list[int] | None]


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One thing that happened: who did what to which target, and why it was allowed."""

    actor: str
    action: str
    target: str
    detail: Detail = {}
    decision_id: str | None = None
    trace_id: str | None = None


class ChainReport(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of walking the chain; `broken_at` names the first bad link."""

    ok: bool
    entries: int
    last_seq: int
    broken_at: int | None = None
    problem: str | None = None


class StoredEntry(msgspec.Struct, frozen=True, kw_only=True):
    """An entry as read back for verification."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: Detail
    decision_id: str | None
    trace_id: str | None
    prev_hash: bytes
    hash: bytes


class AuditQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Filters of an audit search: actor and action by prefix, target by substring, a time
    range [since, until) and the keyset cursor `before_seq` (entries come newest first)."""

    actor: str | None = None
    action: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_seq: int | None = None


class AuditEntryRead(msgspec.Struct, frozen=True, kw_only=True):
    """An entry as the API shows it (hashes in hex). `detail` is typed loosely here only
    because OpenAPI generation cannot express `Detail`'s union of two list types."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    decision_id: str | None
    trace_id: str | None
    prev_hash: str
    hash: str


class AuditPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a search and the cursor of the next (None on the last page)."""

    entries: list[AuditEntryRead]
    next_before_seq: int | None = None


class ExportRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Export the entries matching `query` (at most `limit`) as CSV or JSON."""

    query: AuditQuery = AuditQuery()
    format: Literal["csv", "json"] = "json"
    limit: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 10_000


class SignedManifest(msgspec.Struct, frozen=True, kw_only=True):
    """What an export holds (file names and their SHA-256) and the hub's Ed25519 signature
    over the manifest's canonical JSON (`manifest` exactly as sent, base64 signature)."""

    manifest: str
    signature: str
    key_id: str
    public_key: str


class AuditExport(msgspec.Struct, frozen=True, kw_only=True):
    """An export: the file's name and text, and its signed manifest."""

    filename: str
    content: str
    count: int
    signed: SignedManifest
