"""`RestAdapter`: one signed JSON POST per attempt, classified into a receipt or an error."""

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx
import msgspec

from adapters.base import (
    MAX_DETAIL_CHARS,
    Message,
    PermanentError,
    Receipt,
    RetryableError,
    classify_status,
    parse_retry_after,
)
from adapters.egress import EgressGuard
from adapters.exchange import exchange
from adapters.rest.config import RestConfig, parse_config
from adapters.rest.envelope import encode_body, signed_headers, trace_headers, utc_now
from adapters.rest.tokens import TokenCache
from adapters.rest.transport import ClientPool

# An acknowledgement is small; more than this is not read (only the receipt id is wanted).
MAX_RESPONSE_BYTES = 64 * 1024
MAX_REFERENCE_CHARS = 200


class _Answer(msgspec.Struct, frozen=True, kw_only=True):
    """The part of the agency's HTTP answer that classification needs."""

    status_code: int
    retry_after: str | None
    body: bytes


class RestAdapter:
    """Standard Webhooks over HTTPS, with optional OAuth2 client credentials and client TLS."""

    kind = "rest"
    # Stored sealed by the hub (hub/delivery/secrets.py); opened only to parse for sending.
    secret_paths = ("secrets[]", "oauth2.client_secret", "client_key_file")

    def __init__(self, *, egress: EgressGuard | None = None) -> None:
        self.egress = egress or EgressGuard()
        # Answers are read only up to MAX_RESPONSE_BYTES; the transport's own cap sits above.
        self._clients = ClientPool(self.egress, max_response_bytes=16 * MAX_RESPONSE_BYTES)
        self._tokens = TokenCache(self.egress)

    def parse_config(self, raw: Mapping[str, Any]) -> RestConfig:
        """Validate an agency's REST configuration; `ConfigError` names the bad field."""
        return parse_config(raw)

    def endpoint(self, config: RestConfig) -> str:
        """The webhook URL (validated to carry no credentials)."""
        return config.url

    def urls(self, config: RestConfig) -> list[str]:
        """The webhook URL and, with OAuth2, the token endpoint."""
        return [config.url] + ([config.oauth2.token_url] if config.oauth2 else [])

    async def deliver(self, message: Message, config: RestConfig) -> Receipt:
        """POST the signed message once; a 401 with a cached token earns one retry."""
        now = utc_now()
        try:
            body = encode_body(message, now=now)
        except (msgspec.EncodeError, TypeError, ValueError):
            # Fixed text: the encoder's message could quote a piece of the record.
            raise PermanentError("the record cannot be encoded as JSON") from None
        headers = signed_headers(
            body, webhook_id=str(message.delivery_id), secrets=config.secrets, now=now
        )
        headers.update(trace_headers(message.trace_context))
        answer = await self._post_authorized(config, body, headers)
        if 200 <= answer.status_code < 300:
            return _receipt(answer)
        raise classify_status(answer.status_code, retry_after=parse_retry_after(answer.retry_after))

    async def aclose(self) -> None:
        """Close the delivery and token clients."""
        await self._clients.aclose()
        await self._tokens.aclose()

    async def _post_authorized(
        self, config: RestConfig, body: bytes, headers: dict[str, str]
    ) -> _Answer:
        oauth2 = config.oauth2
        if oauth2 is None:
            return await self._post(config, body, headers)
        token = await self._tokens.token_for(config, oauth2)
        answer = await self._post(config, body, {**headers, "authorization": f"Bearer {token}"})
        if answer.status_code != 401:
            return answer
        # The agency may have revoked or expired the token early: fetch a new one, once.
        self._tokens.invalidate(config, oauth2, token)
        token = await self._tokens.token_for(config, oauth2)
        return await self._post(config, body, {**headers, "authorization": f"Bearer {token}"})

    async def _post(self, config: RestConfig, body: bytes, headers: dict[str, str]) -> _Answer:
        transport = self._clients.transport_for(config)
        timeout = config.timeout_seconds
        try:
            # httpx bounds each phase; the outer bound stops an answer that trickles in slowly.
            # Even error bodies are read (bounded) so the connection can go back to the pool.
            async with asyncio.timeout(timeout):
                answer = await exchange(
                    transport,
                    config.url,
                    content=body,
                    headers=headers,
                    timeout=timeout,
                    max_bytes=MAX_RESPONSE_BYTES,
                )
        except (httpx.TimeoutException, TimeoutError):
            raise RetryableError(f"agency did not answer within {timeout:g}s") from None
        except httpx.RequestError as exc:
            # The class name says enough (ConnectError, RemoteProtocolError...); the text
            # could carry the URL, which is not ours to spread into attempt rows.
            raise RetryableError(f"cannot reach the agency ({type(exc).__name__})") from None
        return _Answer(
            status_code=answer.status_code,
            retry_after=answer.headers.get("retry-after"),
            body=answer.body,
        )


def _receipt(answer: _Answer) -> Receipt:
    reference = _reference(answer.body)
    detail = f"agency answered HTTP {answer.status_code}"
    return Receipt(
        status_code=answer.status_code, reference=reference, detail=detail[:MAX_DETAIL_CHARS]
    )


def _reference(body: bytes) -> str | None:
    """The agency's id for the message from a JSON answer's `id` or `receipt`, if any."""
    try:
        parsed = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    if not isinstance(parsed, dict):
        return None
    for field in ("id", "receipt"):
        value = parsed.get(field)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)[:MAX_REFERENCE_CHARS]
    return None
