"""`JetStreamAdapter`: one JetStream publish per attempt, acknowledged by the stream."""

from collections.abc import Mapping
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.js.api import PubAck

from adapters.base import (
    MAX_DETAIL_CHARS,
    DeliveryError,
    Message,
    PermanentError,
    Receipt,
    RetryableError,
)
from adapters.egress import EgressGuard, EgressRefusedError
from adapters.jetstream.config import JetStreamConfig, parse_config
from adapters.jetstream.connections import Connections, ServerEgressGuard
from adapters.rest.envelope import encode_body, trace_headers, utc_now

MSG_ID = "Nats-Msg-Id"
CONTENT_TYPE = "application/json"


class JetStreamAdapter:
    """Publishes the released event, as the REST webhook body, to the agency's subject."""

    kind = "jetstream"
    # Stored sealed by the hub (hub/delivery/secrets.py); opened only to parse for sending.
    secret_paths = ("password", "token")

    def __init__(self, *, egress: EgressGuard | None = None) -> None:
        self.egress: EgressGuard = ServerEgressGuard.of(egress or EgressGuard())
        assert isinstance(self.egress, ServerEgressGuard)  # noqa: S101 - set just above
        self._connections = Connections(self.egress)

    def parse_config(self, raw: Mapping[str, Any]) -> JetStreamConfig:
        """Validate an agency's JetStream configuration; `ConfigError` names the bad field."""
        return parse_config(raw)

    def endpoint(self, config: JetStreamConfig) -> str:
        """The first server, the stream and the subject (never the credentials)."""
        return f"{config.servers[0]} stream={config.stream} subject={config.subject}"

    def urls(self, config: JetStreamConfig) -> list[str]:
        """Every server URL (each is checked against the egress policy at registration)."""
        return list(config.servers)

    async def deliver(self, message: Message, config: JetStreamConfig) -> Receipt:
        """Publish once and wait for the stream's acknowledgement; a repeat of a delivery id
        inside the stream's duplicate window is acknowledged without being stored again."""
        try:
            body = encode_body(message, now=utc_now())
        except (msgspec.EncodeError, TypeError, ValueError):
            raise PermanentError("the record cannot be encoded as JSON") from None
        headers = {MSG_ID: str(message.delivery_id), "Content-Type": CONTENT_TYPE}
        headers |= trace_headers(message.trace_context)
        try:
            stream = await self._connections.jetstream(config)
            ack = await stream.publish(
                config.subject,
                body,
                timeout=config.timeout_seconds,
                stream=config.stream,
                headers=headers,
            )
        except (OSError, TimeoutError, nats.errors.Error, EgressRefusedError) as exc:
            raise classify_error(exc, timeout=config.timeout_seconds) from None
        return _receipt(ack)

    async def aclose(self) -> None:
        """Close the NATS connections."""
        await self._connections.aclose()


def classify_error(exc: BaseException, *, timeout: float) -> DeliveryError:
    """What a failed publish means for delivery: JetStream's API errors by their HTTP-like
    code (400 refusals are permanent, 503 and other server states retry), a payload over the
    server's limit is permanent, and everything about reaching the server retries."""
    if isinstance(exc, nats.js.errors.APIError) and exc.code is not None:
        reason = exc.description or "no reason given"
        text = f"jetstream refused the message: {reason} (code {exc.code}, error {exc.err_code})"
        if exc.code in (408, 429) or exc.code >= 500:
            return RetryableError(text, status_code=exc.code)
        return PermanentError(text, status_code=exc.code)
    if isinstance(exc, nats.errors.MaxPayloadError):
        return PermanentError("the message is larger than the server's max_payload")
    if isinstance(exc, nats.js.errors.NoStreamResponseError):
        # No stream listens on the subject (yet: a restarting server recovers streams late).
        return RetryableError("no stream captures the subject")
    if isinstance(exc, EgressRefusedError):
        return RetryableError(str(exc))
    if isinstance(exc, TimeoutError):  # nats.errors.TimeoutError is one too
        return RetryableError(f"jetstream did not acknowledge within {timeout:g}s")
    # The class says enough (ConnectionRefusedError, NoServersError...); the text could
    # carry an address, which is not ours to spread into attempt rows.
    return RetryableError(f"cannot reach the NATS server ({type(exc).__name__})")


def _receipt(ack: PubAck) -> Receipt:
    detail = f"stored in stream {ack.stream} at sequence {ack.seq}"
    if ack.duplicate:
        detail = f"already stored in stream {ack.stream} at sequence {ack.seq} (duplicate)"
    return Receipt(reference=f"{ack.stream}:{ack.seq}", detail=detail[:MAX_DETAIL_CHARS])
