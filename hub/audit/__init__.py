"""The audit trail: an append-only log shaped like a transparency log (ADR 0011).

It owns `audit_log` and the tree tables (`audit_tree`, `audit_node`, `audit_checkpoint`).
Entries are inserted inside the caller's transaction (so an action and its audit entry commit
together or not at all) without any lock; one sealer integrates committed entries into an
RFC 9162 Merkle tree and signs checkpoints. An append with no transaction of its own goes
through the process's `AuditAppender`, which commits concurrent ones together (ADR 0025).
Entry content is never updated; entries are only deleted by pruning below a signed
checkpoint, and `verify_log` proves the rest.
"""

from hub.audit.appender import AppenderOptions, AuditAppender
from hub.audit.checkpoints import CheckpointSigner, public_key_in
from hub.audit.errors import (
    AuditBusyError,
    AuditClosedError,
    AuditEntryRejectedError,
    AuditWriteError,
)
from hub.audit.export import ExportSigner, verify_manifest, verify_manifest_digests
from hub.audit.proofs import check_bundle, consistency_proof, inclusion_proof, prove_entries
from hub.audit.rules import checkpoint_stale
from hub.audit.schemas import (
    AuditEntry,
    AuditEntryRead,
    AuditQuery,
    Checkpoint,
    LogReport,
    ProofBundle,
    SealReport,
    SignedManifest,
)
from hub.audit.sealer import Sealer
from hub.audit.service import (
    AuditAppend,
    append_entries,
    append_entry,
    audit_append,
    checkpoint_owed_since,
    prune_entries,
    prune_plan,
    search,
    witness_status,
)
from hub.audit.verify import verify_log

__all__ = [
    "AppenderOptions",
    "AuditAppend",
    "AuditAppender",
    "AuditBusyError",
    "AuditClosedError",
    "AuditEntry",
    "AuditEntryRead",
    "AuditEntryRejectedError",
    "AuditQuery",
    "AuditWriteError",
    "Checkpoint",
    "CheckpointSigner",
    "ExportSigner",
    "LogReport",
    "ProofBundle",
    "SealReport",
    "Sealer",
    "SignedManifest",
    "append_entries",
    "append_entry",
    "audit_append",
    "check_bundle",
    "checkpoint_owed_since",
    "checkpoint_stale",
    "consistency_proof",
    "inclusion_proof",
    "prove_entries",
    "prune_entries",
    "prune_plan",
    "public_key_in",
    "search",
    "verify_log",
    "verify_manifest",
    "verify_manifest_digests",
    "witness_status",
]
