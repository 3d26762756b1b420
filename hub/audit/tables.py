"""Piccolo table of the audit log (append-only; schema in migrations/sql/)."""

from piccolo.columns import JSONB, BigInt, Bytea, Text, Timestamptz
from piccolo.table import Table


class AuditLog(Table, tablename="audit_log"):
    """One chained entry; never updated or deleted except by the retention sweep."""

    seq = BigInt(primary_key=True)
    at = Timestamptz()
    actor = Text()
    action = Text()
    target = Text()
    detail = JSONB()
    decision_id = Text(null=True, default=None)
    trace_id = Text(null=True, default=None)
    prev_hash = Bytea()
    hash = Bytea()
