"""The JSON body and the Standard Webhooks headers of one delivery.

The body is signed exactly as sent: the signature covers `webhook-id`, `webhook-timestamp`
and these bytes, so nothing may re-encode the body after `signed_headers`.
"""

import re
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
from standardwebhooks import Webhook

from adapters.base import Message

EVENT_TYPE = "detection.released"
TEST_EVENT_TYPE = "hub.test"
USER_AGENT = "hub-rest-adapter/1"

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_TRACESTATE = re.compile(r"^[\x21-\x7e ]{1,512}$")  # printable ASCII, W3C's 512-char cap


class DeliveryData(msgspec.Struct, frozen=True, kw_only=True):
    """`data` of the webhook: the released record and the delivery's own ids. Event ids,
    times and the node are in `record` when release policy left them there, never beside it."""

    delivery_id: UUID
    decision_id: str
    attempt: int
    record: dict[str, Any]


class DeliveryEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """The webhook body, in the Standard Webhooks `{type, timestamp, data}` shape."""

    type: str
    timestamp: str
    data: DeliveryData


def encode_body(message: Message, *, now: datetime) -> bytes:
    """The JSON body for `message`, stamped `now` (UTC)."""
    envelope = DeliveryEnvelope(
        type=TEST_EVENT_TYPE if message.test else EVENT_TYPE,
        timestamp=now.isoformat().replace("+00:00", "Z"),
        data=DeliveryData(
            delivery_id=message.delivery_id,
            decision_id=message.decision_id,
            attempt=message.attempt,
            record=message.record,
        ),
    )
    return msgspec.json.encode(envelope)


def signed_headers(
    body: bytes, *, webhook_id: str, secrets: tuple[str, ...], now: datetime
) -> dict[str, str]:
    """Standard Webhooks headers; one `v1,<sig>` per secret so rotation needs no flag day."""
    # The library signs whole seconds; the header must carry the same second it signed.
    stamp = now.replace(microsecond=0)
    text = body.decode()
    signatures = " ".join(
        Webhook(secret).sign(msg_id=webhook_id, timestamp=stamp, data=text) for secret in secrets
    )
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        # The answer is read raw and bounded; an uncompressed one is all we can use.
        "accept-encoding": "identity",
    }


def trace_headers(trace_context: dict[str, str]) -> dict[str, str]:
    """W3C trace context to pass on; a malformed value is dropped, never fails a delivery."""
    headers: dict[str, str] = {}
    parent = trace_context.get("traceparent", "")
    if _TRACEPARENT.match(parent):
        headers["traceparent"] = parent
        state = trace_context.get("tracestate", "")
        if _TRACESTATE.match(state):
            headers["tracestate"] = state
    return headers


def utc_now() -> datetime:
    """The signing time (wall clock, UTC): receivers check it against their own clock."""
    return datetime.now(UTC)
