"""The adapter contract: how the hub hands one released event to an agency's system.

An adapter turns a `Message` (the event as release policy lets this agency see it) into the
agency's own protocol and answers with a `Receipt`, or raises a `DeliveryError` that says
whether trying again could help. The worker owns retries, backoff and dead letters; an
adapter makes exactly one attempt per call and never sleeps or loops on its own.

Adapters are found through the `hub.adapters` entry-point group: the entry point's name is
the adapter kind and its value a factory taking the hub's `EgressGuard` (keyword `egress`)
and returning an `Adapter`. A third party ships one in its own distribution without touching
the hub. Every HTTP client an adapter makes uses the guard's transports (adapters/egress.py),
so endpoints reach only permitted addresses and answers are read with a cap.

An adapter may name the secret fields of its configuration in a `secret_paths` class
attribute (`"oauth2.client_secret"`, `"secrets[]"` for each item of a list): the hub stores
them sealed and hands `parse_config` the opened configuration (hub/delivery/secrets.py).
"""

from collections.abc import Mapping
from typing import Any, Protocol
from uuid import UUID

import msgspec

from adapters.egress import EgressGuard

# Errors and receipts carry at most this much text (attempt rows bound their error column).
MAX_DETAIL_CHARS = 1000


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """One delivery as the agency may see it.

    Event data travels only in `record`, the record as release policy redacted it for this
    agency (its ids, times, node and camera included), so every field an adapter sends is
    either part of it or one of the fields below, which say nothing about the event:
    `delivery_id` (the idempotency key, the same on every attempt of one delivery), the
    recipient's own name, the attempt number and the id of the decision that released it.
    Adapters must not add event data from anywhere else (policies/README.md, "Envelope
    fields").
    """

    delivery_id: UUID
    agency: str
    attempt: int
    decision_id: str
    record: dict[str, Any]
    # W3C trace context (`traceparent`, optional `tracestate`) to pass on to the agency.
    trace_context: dict[str, str] = {}
    # A test message from `hub agencies test`: same path, flagged so the agency can tell.
    test: bool = False


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    """What the agency answered when it took the message."""

    status_code: int | None = None
    reference: str | None = None  # the agency's own id for the message, when it gives one
    detail: str = ""


class DeliveryError(Exception):
    """A failed attempt. `retryable` decides between the backoff schedule and a dead letter."""

    retryable: bool = True

    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message[:MAX_DETAIL_CHARS])
        self.status_code = status_code
        # Seconds the agency asked us to wait (Retry-After); the worker honours it.
        self.retry_after = retry_after


class RetryableError(DeliveryError):
    """Worth another attempt: timeouts, connection errors, 5xx, 408, 429, SOAP Server faults."""

    retryable = True


class PermanentError(DeliveryError):
    """Another attempt would fail the same way: other 4xx, schema errors, SOAP Client faults."""

    retryable = False


class ConfigError(ValueError):
    """An agency's adapter configuration is invalid; the message names the field."""


class Adapter(Protocol):
    """One agency protocol. Instances live for a worker process and may hold connection pools."""

    kind: str
    # The egress policy this adapter's clients enforce; registration checks `urls` with it.
    egress: EgressGuard

    def parse_config(self, raw: Mapping[str, Any]) -> Any:
        """Validate an agency's configuration (at registration and before each delivery);
        raise `ConfigError` naming the offending field."""
        ...

    def endpoint(self, config: Any) -> str:
        """Where the agency is reached, for listings (never includes secrets)."""
        ...

    def urls(self, config: Any) -> list[str]:
        """Every URL this configuration makes the adapter contact (token endpoints too)."""
        ...

    async def deliver(self, message: Message, config: Any) -> Receipt:
        """Make one attempt; return the receipt or raise a `DeliveryError`."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def classify_status(status_code: int, *, retry_after: float | None = None) -> DeliveryError:
    """The error an HTTP status means for delivery: 408, 429 and 5xx retry, other 4xx do not."""
    text = f"agency answered HTTP {status_code}"
    if status_code in (408, 429) or status_code >= 500:
        return RetryableError(text, status_code=status_code, retry_after=retry_after)
    return PermanentError(text, status_code=status_code)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
