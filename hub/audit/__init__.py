"""The audit trail: a hash-chained, append-only log of everything the hub lets anyone do.

It owns `audit_log`. Entries are appended inside the caller's transaction (so an action and
its audit entry commit together or not at all) and never updated; `verify_chain` proves it.
"""

from hub.audit.schemas import AuditEntry, ChainReport
from hub.audit.service import append_entry, verify_chain

__all__ = ["AuditEntry", "ChainReport", "append_entry", "verify_chain"]
