"""The audit trail: a hash-chained, append-only log of everything the hub lets anyone do.

It owns `audit_log`. Entries are appended inside the caller's transaction (so an action and
its audit entry commit together or not at all) and never updated; `verify_chain` proves it.
"""

from hub.audit.export import ExportSigner, verify_manifest
from hub.audit.schemas import AuditEntry, AuditEntryRead, AuditQuery, ChainReport, SignedManifest
from hub.audit.service import append_entry, search, verify_chain

__all__ = [
    "AuditEntry",
    "AuditEntryRead",
    "AuditQuery",
    "ChainReport",
    "ExportSigner",
    "SignedManifest",
    "append_entry",
    "search",
    "verify_chain",
    "verify_manifest",
]
