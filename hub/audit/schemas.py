"""Audit entries as they are written and the result of a chain check."""

from datetime import datetime

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
