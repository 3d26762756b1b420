"""Piccolo tables of agencies and the delivery ledger (schema in migrations/sql/)."""

from piccolo.columns import JSONB, UUID, BigInt, ForeignKey, Integer, Text, Timestamptz
from piccolo.table import Table


class Agency(Table, tablename="agency"):
    """An external recipient and how the hub reaches it."""

    id = UUID(primary_key=True)
    name = Text(unique=True)
    adapter_kind = Text()
    endpoint = Text()
    config = JSONB(default={})
    status = Text(default="active")
    created_at = Timestamptz()
    updated_at = Timestamptz()


class Delivery(Table, tablename="delivery"):
    """One event offered to one agency: the outbox row the worker drives to an end state."""

    id = UUID(primary_key=True)
    event_pk = BigInt()
    event_captured_at = Timestamptz()
    agency_id = ForeignKey(references=Agency)
    status = Text(default="pending")
    attempts = Integer(default=0)
    next_attempt_at = Timestamptz()
    last_error = Text(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()
    delivered_at = Timestamptz(null=True, default=None)
