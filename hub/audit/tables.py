"""Piccolo table of the audit log (schema in migrations/sql/, see 0013)."""

from piccolo.columns import JSONB, BigInt, Bytea, Text, Timestamptz
from piccolo.table import Table


class AuditLog(Table, tablename="audit_log"):
    """One entry; content never updated, sealed once (leaf_index, leaf_hash), deleted only
    by pruning below a signed checkpoint."""

    seq = BigInt(primary_key=True)
    at = Timestamptz()
    actor = Text()
    action = Text()
    target = Text()
    detail = JSONB()
    decision_id = Text(null=True, default=None)
    trace_id = Text(null=True, default=None)
    leaf_index = BigInt(null=True, default=None)
    leaf_hash = Bytea(null=True, default=None)
