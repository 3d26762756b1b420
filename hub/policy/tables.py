"""Piccolo tables of the policy domain (schema and indexes in migrations/sql/0002_policy.sql).

The decision log writes `policy_decisions` with one multi-row SQL insert (decision_log.py);
these classes serve reads and the schema check.
"""

from piccolo.columns import JSONB, Bytea, Integer, Text, Timestamptz
from piccolo.table import Table


class PolicyDecision(Table, tablename="policy_decisions"):
    """One policy decision as logged: masked input, result, bundle revision, latency."""

    decision_id = Text(primary_key=True)
    at = Timestamptz()
    entrypoint = Text()
    revision = Text()
    latency_us = Integer()
    input = JSONB()
    result = JSONB()
    error = Text(null=True, default=None)


class PolicyBundle(Table, tablename="policy_bundles"):
    """An uploaded bundle; at most one row is `active` (a partial unique index holds that)."""

    revision = Text(primary_key=True)
    sha256 = Text()
    uploaded_at = Timestamptz()
    uploaded_by = Text()
    activated_at = Timestamptz(null=True, default=None)
    activated_by = Text(null=True, default=None)
    status = Text(default="uploaded")
    manifest = JSONB()
    archive = Bytea()
    test_report = JSONB(null=True, default=None)
