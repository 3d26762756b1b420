"""How the SOAP adapter talks HTTP: zeep's async transport, with per-call headers and answers
read only through `parse_untrusted`.

zeep builds the envelope and applies plugins inside one `await` of the operation, so the
per-call values (delivery id, trace context) ride in a `ContextVar` owned by the plugin: each
asyncio task sees only its own call, which keeps one cached client safe for concurrent
deliveries.
"""

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import httpx
import requests
from lxml import etree
from lxml.builder import ElementMaker
from zeep.plugins import Plugin
from zeep.transports import AsyncTransport

from adapters.base import parse_retry_after
from adapters.egress import GuardedAsyncTransport
from adapters.exchange import Answer, exchange
from hub.kit.xmlsafe import UnsafeXMLError, parse_untrusted

WSA = "http://www.w3.org/2005/08/addressing"
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
# A WSDL with its schemas can be large; an answer to one delivery cannot.
MAX_WSDL_BYTES = 8 << 20
MAX_ANSWER_BYTES = 1 << 20

_WSA = ElementMaker(namespace=WSA, nsmap={"wsa": WSA})
_TRACE_HEADERS = ("traceparent", "tracestate")
_ENVELOPES = (SOAP11_ENV, SOAP12_ENV)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class UnsafeAnswerError(Exception):
    """The agency answered 200 with XML we refuse to read (DTD, entities, too big, malformed)."""


class AgencyStatusError(Exception):
    """The agency answered an HTTP error status without a SOAP fault in the body."""

    def __init__(self, status_code: int, *, retry_after: float | None) -> None:
        super().__init__(f"agency answered HTTP {status_code}")
        self.status_code = status_code
        self.retry_after = retry_after


class CallHeadersPlugin(Plugin):
    """Adds WS-Addressing Action/MessageID/To and trace headers for the call in progress.

    The MessageID is `urn:uuid:<delivery id>` so the agency can de-duplicate; zeep's own
    `WsAddressingPlugin` would send a random one, so any wsa header already present (zeep adds
    them when the WSDL declares wsa:Action) is replaced.
    """

    def __init__(self) -> None:
        self._call: ContextVar[tuple[uuid.UUID, Mapping[str, str]] | None] = ContextVar(
            f"soap_call_{id(self)}", default=None
        )

    @contextmanager
    def call(self, delivery_id: uuid.UUID, *, trace_context: Mapping[str, str]) -> Iterator[None]:
        """Within this block, calls made by this task carry these headers."""
        token = self._call.set((delivery_id, trace_context))
        try:
            yield
        finally:
            self._call.reset(token)

    def egress(
        self, envelope: Any, http_headers: dict[str, str], operation: Any, binding_options: Any
    ) -> tuple[Any, dict[str, str]]:
        current = self._call.get()
        if current is None:
            return envelope, http_headers
        delivery_id, trace_context = current
        header = _header_of(envelope)
        for old in header.findall(f"{{{WSA}}}*"):
            header.remove(old)
        action = operation.abstract.wsa_action or operation.soapaction or ""
        header.extend(
            [
                _WSA.Action(action),
                _WSA.MessageID(f"urn:uuid:{delivery_id}"),
                _WSA.To(binding_options["address"]),
            ]
        )
        for name in _TRACE_HEADERS:
            if trace_context.get(name):
                http_headers[name] = trace_context[name]
        return envelope, http_headers


class ForbiddenImportError(Exception):
    """The WSDL pulls a document from somewhere other than its own origin."""


class GuardedTransport(AsyncTransport):
    """zeep's `AsyncTransport`, but every document is size-bounded and passes `parse_untrusted`
    before zeep reads it, WSDL imports stay on the WSDL's own origin (zeep would otherwise
    follow them anywhere, local files included), and message bodies are never logged (they
    hold the record)."""

    def __init__(
        self,
        *,
        origin: str,
        calls: GuardedAsyncTransport,
        call_timeout_seconds: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]  # zeep is untyped
        self.origin = origin
        # Calls go straight to the pooled transport (adapters/exchange.py), not through an
        # httpx client's per-request layers; the adapter's own deadline is the real bound.
        self.calls = calls
        self.call_timeout_seconds = call_timeout_seconds

    def load(self, url: str) -> bytes:
        if origin_of(url) != self.origin:
            raise ForbiddenImportError("WSDL imports a document from another origin")
        return self._load_remote_data(url)

    def _load_remote_data(self, url: str) -> bytes:
        client: httpx.Client = self.wsdl_client
        with client.stream("GET", url) as response:
            if response.status_code != 200:
                raise AgencyStatusError(response.status_code, retry_after=None)
            content = _read_bounded_sync(response, MAX_WSDL_BYTES)
        # Raises UnsafeXMLError for DTDs, entities or malformed documents.
        parse_untrusted(content, max_bytes=MAX_WSDL_BYTES)
        return content

    async def post(self, address: str, message: bytes, headers: dict[str, str]) -> httpx.Response:
        answer = await self._exchange(address, message, headers)
        request = httpx.Request("POST", address)  # zeep reads the answer only
        return httpx.Response(
            answer.status_code, headers=answer.headers, content=answer.body, request=request
        )

    async def post_xml(self, address: str, envelope: Any, headers: dict[str, str]) -> Any:
        message = etree.tostring(envelope, encoding="utf-8", xml_declaration=True)
        answer = await self._exchange(address, message, headers)
        _checked_root(answer)
        return _reply(answer)

    async def send_envelope(
        self, address: str, envelope: etree._Element, headers: dict[str, str]
    ) -> tuple[int, etree._Element | None]:
        """`post_xml` for a prepared operation: the status and the answer, parsed once (by
        `parse_untrusted`; None for an empty one), for `read_reply` instead of zeep re-parsing
        it from a reply object."""
        message = etree.tostring(envelope, encoding="utf-8", xml_declaration=True)
        answer = await self._exchange(address, message, headers)
        return answer.status_code, _checked_root(answer)

    async def _exchange(self, address: str, message: bytes, headers: dict[str, str]) -> Answer:
        answer = await exchange(
            self.calls,
            address,
            content=message,
            headers=headers,
            timeout=self.call_timeout_seconds,
            max_bytes=MAX_ANSWER_BYTES,
        )
        if answer.truncated:
            raise UnsafeAnswerError(f"answer larger than {MAX_ANSWER_BYTES} bytes")
        return answer


def _reply(answer: Answer) -> requests.Response:
    """The answer as zeep's `process_reply` reads it (status, headers, content), made directly:
    zeep's `new_response` goes through an httpx response, its cookie jar and charset guess."""
    reply = requests.Response()
    reply._content = answer.body
    reply.status_code = answer.status_code
    reply.headers = requests.structures.CaseInsensitiveDict(answer.headers)
    return reply


def _read_bounded_sync(response: httpx.Response, limit: int) -> bytes:
    """`_read_bounded` for the synchronous WSDL client."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise UnsafeAnswerError(f"document larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _header_of(envelope: etree._Element) -> etree._Element:
    """The envelope's Header element, created as its first child when missing."""
    namespace = etree.QName(envelope).namespace
    header = envelope.find(f"{{{namespace}}}Header")
    if header is None:
        header = etree.Element(f"{{{namespace}}}Header")
        envelope.insert(0, header)
    return header


def origin_of(url: str) -> str:
    """`scheme://host:port` of an http(s) URL; empty for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    return f"{parts.scheme}://{parts.hostname}:{parts.port or _DEFAULT_PORTS[parts.scheme]}"


def _checked_root(response: Answer) -> etree._Element | None:
    """The answer's root, parsed as untrusted (None when empty); unsafe XML is refused, and a
    non-200 answer that is not a SOAP fault is judged by its status."""
    status, content = response.status_code, response.body
    if status in (201, 202) and not content:
        return None  # one-way operations: accepted, nothing to read
    root = None
    if content:
        try:
            root = parse_untrusted(content, max_bytes=MAX_ANSWER_BYTES)
        except UnsafeXMLError as exc:
            if status == 200:
                raise UnsafeAnswerError(str(exc)) from None
    if status != 200 and (root is None or not _has_fault(root)):
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise AgencyStatusError(status, retry_after=retry_after)
    return root


def _has_fault(root: etree._Element) -> bool:
    return any(root.find(f"{{{ns}}}Body/{{{ns}}}Fault") is not None for ns in _ENVELOPES)
