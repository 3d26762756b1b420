"""`SoapAdapter`: one delivery is one call of the agency's WSDL operation, made with zeep."""

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from adapters.base import Message, Receipt
from adapters.egress import EgressGuard
from adapters.soap.clients import BoundService, ServiceCache
from adapters.soap.config import MAX_TIMEOUT_SECONDS, SoapConfig, parse_config
from adapters.soap.envelope import PreparedOperation, prepare, read_reply
from adapters.soap.errors import call_error, load_error
from adapters.soap.mapping import (
    message_sources,
    receipt_reference,
    request_elements,
    request_values,
)
from adapters.soap.transport import MAX_ANSWER_BYTES, CallHeadersPlugin

# One pool for every agency: a busy worker keeps connections warm instead of re-handshaking.
POOL_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=100)


class SoapAdapter:
    """Kind `soap`: WS-Addressing MessageID = `urn:uuid:<delivery id>` is the idempotency key."""

    kind = "soap"
    # No secret fields: credentials in URLs are refused (config.py); nothing to seal.
    secret_paths: tuple[str, ...] = ()

    def __init__(self, *, egress: EgressGuard | None = None) -> None:
        self.egress = egress or EgressGuard()
        transport = self.egress.async_transport(
            limits=POOL_LIMITS, max_response_bytes=MAX_ANSWER_BYTES
        )
        # The per-call deadline is `timeout_seconds` (asyncio.timeout); this is a backstop.
        self._http = httpx.AsyncClient(
            timeout=MAX_TIMEOUT_SECONDS, transport=transport, trust_env=False
        )
        self._plugin = CallHeadersPlugin()
        self._services = ServiceCache(
            http=self._http,
            calls=transport,
            call_timeout_seconds=MAX_TIMEOUT_SECONDS,
            plugin=self._plugin,
            egress=self.egress,
        )

    def parse_config(self, raw: Mapping[str, Any]) -> SoapConfig:
        """Validate an agency's SOAP configuration; `ConfigError` names the field."""
        return parse_config(raw)

    def endpoint(self, config: SoapConfig) -> str:
        """The address override when set, else the WSDL URL (the address comes from it),
        without any user:password part."""
        parts = urlsplit(config.address or config.wsdl_url)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def urls(self, config: SoapConfig) -> list[str]:
        """The WSDL (and every document it imports, same origin) and the call address."""
        return [config.wsdl_url] + ([config.address] if config.address else [])

    async def deliver(self, message: Message, config: SoapConfig) -> Receipt:
        """Call `config.operation` once with the message mapped onto its request."""
        service = await self._service(config)
        try:
            async with asyncio.timeout(config.timeout_seconds):
                answer = await self._call(service, message, config)
        except Exception as exc:
            error = call_error(exc, timeout_seconds=config.timeout_seconds)
            if error is None:
                raise
            raise error from None
        return Receipt(status_code=200, reference=receipt_reference(answer))

    async def aclose(self) -> None:
        """Close the connection pool shared by every loaded WSDL."""
        await self._http.aclose()

    async def _service(self, config: SoapConfig) -> BoundService:
        try:
            return await self._services.bound(config)
        except Exception as exc:
            raise load_error(exc) from None

    async def _call(self, service: BoundService, message: Message, config: SoapConfig) -> Any:
        name = config.operation
        values = request_values(request_elements(service.operation(name)), _sources(message))
        if name not in service.prepared:
            service.prepared[name] = prepare(service.proxy, service.binding, name, values)
        prepared = service.prepared[name]
        with self._plugin.call(message.delivery_id, trace_context=message.trace_context):
            if prepared is None:
                return await service.proxy[name](**values)
            return await self._send_prepared(service, prepared, values)

    async def _send_prepared(
        self, service: BoundService, prepared: PreparedOperation, values: dict[str, Any]
    ) -> Any:
        """One call from the operation's template: what zeep's `send_async` does, minus
        re-deriving the envelope."""
        client, options = service.proxy._client, service.proxy._binding_options
        envelope, headers = prepared.fill(values)
        envelope, headers = self._plugin.egress(envelope, headers, prepared.operation, options)
        status, root = await client.transport.send_envelope(options["address"], envelope, headers)
        return read_reply(service.binding, prepared.operation, status, root)


def _sources(message: Message) -> dict[str, Any]:
    delivery = {
        "deliveryId": str(message.delivery_id),
        "decisionId": message.decision_id,
        "attempt": message.attempt,
        "test": message.test,
        "agency": message.agency,
    }
    return message_sources(delivery=delivery, record=message.record)
