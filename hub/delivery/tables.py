"""Piccolo tables of agencies and the delivery ledger (schema in migrations/sql/)."""

from piccolo.columns import (
    JSONB,
    UUID,
    Array,
    BigInt,
    DoublePrecision,
    ForeignKey,
    Integer,
    Real,
    Text,
    Timestamptz,
)
from piccolo.table import Table


class Agency(Table, tablename="agency"):
    """An external recipient, how the hub reaches it and what it subscribes to."""

    id = UUID(primary_key=True)
    name = Text(unique=True)
    adapter_kind = Text()
    endpoint = Text()
    config = JSONB(default={})
    status = Text(default="active")
    created_at = Timestamptz()
    updated_at = Timestamptz()
    purpose = Text(default="investigation")
    sub_classes = Array(base_column=Text())
    sub_cameras = Array(base_column=Text())
    sub_min_confidence = Real(default=0.0)
    jurisdictions = Array(base_column=Text())
    clearance = Integer(default=0)
    max_concurrency = Integer(default=8)
    rate_per_second = Real(default=200.0)
    paused_reason = Text(null=True, default=None)
    paused_at = Timestamptz(null=True, default=None)
    # Seconds before each retry (the last repeats); NULL keeps the default backoff.
    retry_schedule = Array(base_column=DoublePrecision(), null=True, default=None)
    # none | agency | camera: FIFO for receivers that need order (ADR 0019).
    ordering = Text(default="none")


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
    attempt_limit = Integer(default=8)
    decision_id = Text(null=True, default=None)
    receipt = JSONB(null=True, default=None)
    last_status_code = Integer(null=True, default=None)
    dead_at = Timestamptz(null=True, default=None)
    traceparent = Text(null=True, default=None)
    # FIFO agencies only (ADR 0019): the row's place in its queue, numbered after commit by
    # the ordered claim, and the camera whose queue it is in camera mode.
    order_seq = BigInt(null=True, default=None)
    camera_id = Text(null=True, default=None)


class DeliveryAttempt(Table, tablename="delivery_attempt"):
    """One attempt of a delivery: when, how long, what came of it."""

    id = BigInt(primary_key=True)
    delivery_id = ForeignKey(references=Delivery)
    attempt = Integer()
    started_at = Timestamptz()
    duration_ms = Integer()
    outcome = Text()
    status_code = Integer(null=True, default=None)
    error = Text(null=True, default=None)
    decision_id = Text(null=True, default=None)
